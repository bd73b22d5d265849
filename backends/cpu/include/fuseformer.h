/*
 * fuseformer.h: the C ABI of a fuseformer CPU artifact's library (model.so).
 *
 * An artifact is a directory written by `optimize MODEL --target cpu -o DIR`
 * (or fuseformer.backends.cpu.compile_cpu):
 *
 *   DIR/model.so              the library declared below
 *   DIR/weights.safetensors   every constant the model reads
 *   DIR/manifest.json         specs and sha256s (for the Python runtime; a C caller
 *                             can get everything it needs from the library itself)
 *   DIR/model.cpp             the generated source, which includes this header, so
 *                             the compiler checks every definition against it
 *
 * To run a model from C or C++ without Python:
 *
 *   1. dlopen DIR/model.so (or link it) and check ff_abi_version() == FF_ABI_VERSION.
 *   2. Map DIR/weights.safetensors read-only. The file starts with an 8-byte
 *      little-endian header length N, then N bytes of JSON, then the data section.
 *      Pass the address of the data section (file start + 8 + N) as `weights`:
 *      the library has the offset of every tensor in that section compiled in,
 *      so no JSON needs parsing. The file must hold at least ff_weights_bytes()
 *      bytes after the header. Mapping the whole file keeps every tensor at its
 *      natural alignment (the mapping is page-aligned and safetensors pads its
 *      header to a multiple of 8).
 *   3. Allocate ff_arena_bytes() bytes of scratch, aligned to FF_ARENA_ALIGN.
 *      One arena serves every call, whatever the symbol values.
 *   4. Choose a value for every symbol (a dynamic input dim, e.g. batch or seq),
 *      each between 1 and ff_symbol_max(s); fill `dims` in symbol order.
 *   5. Lay the inputs out contiguously (C order, native byte order) with the
 *      shapes ff_tensor_dims(FF_INPUT, i, ...) describes, allocate every output
 *      with the shape ff_output_shape(k, dims, shape) gives, and call ff_run.
 *      A nonzero return is a status code: ff_status_message(code) says what went wrong.
 *
 * examples/c/run_artifact.c does all of this in one file.
 *
 * Calls into one loaded library must not overlap (the arena and the thread
 * setting are shared); the Python runtime serializes them the same way.
 * Strings the library returns are static, NUL-terminated UTF-8, and are model
 * names exactly as the model spells them (they may hold any character).
 *
 * The header is C99 and C++ compatible and declares nothing but the ABI.
 */
#ifndef FUSEFORMER_H
#define FUSEFORMER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes; ff_abi_version() of a compatible library returns it. */
#define FF_ABI_VERSION 1

/* File names inside an artifact directory. */
#define FF_LIBRARY_FILE "model.so"
#define FF_WEIGHTS_FILE "weights.safetensors"

/* The alignment the arena must have, in bytes (the planner aligns every buffer in it to this). */
#define FF_ARENA_ALIGN 64

/* The `io` argument of the ff_tensor_* functions. */
#define FF_INPUT 0
#define FF_OUTPUT 1

/*
 * Element types: the ONNX TensorProto.DataType codes, so a caller that already
 * speaks ONNX needs no table. Only the types with CPU kernels occur.
 */
#define FF_DTYPE_FLOAT32 1
#define FF_DTYPE_UINT8 2
#define FF_DTYPE_INT8 3
#define FF_DTYPE_UINT16 4
#define FF_DTYPE_INT16 5
#define FF_DTYPE_INT32 6
#define FF_DTYPE_INT64 7
#define FF_DTYPE_BOOL 9 /* one byte, 0 or 1 */
#define FF_DTYPE_FLOAT64 11
#define FF_DTYPE_UINT32 12
#define FF_DTYPE_UINT64 13

/*
 * An entry of ff_tensor_dims: a value >= 0 is a fixed size; FF_DIM_SYMBOL(s) is
 * the value of symbol s (decode with FF_DIM_SYMBOL_INDEX); FF_DIM_DERIVED is an
 * output size computed from the symbols (e.g. seq + 1): ask ff_output_shape.
 * Input dims are always fixed or a single symbol.
 */
#define FF_DIM_SYMBOL(s) (-1 - (int64_t)(s))
#define FF_DIM_IS_SYMBOL(d) ((d) < 0 && (d) != FF_DIM_DERIVED)
#define FF_DIM_SYMBOL_INDEX(d) ((int)(-1 - (d)))
#define FF_DIM_DERIVED INT64_MIN

/* ff_run's return values: 0, or a status whose meaning ff_status_message(code) gives. */
#define FF_OK 0
#define FF_STATUS_BAD_DIMS (-1) /* a symbol value outside [1, ff_symbol_max] */

/* ---- the entry -------------------------------------------------------------- */

/*
 * Run the model once.
 *   inputs   one pointer per input, in input order, to contiguous data
 *   outputs  one pointer per output, each to ff_output_shape's number of elements
 *   dims     one value per symbol, in symbol order (unused when the model has none)
 *   weights  the data section of weights.safetensors (see step 2 above)
 *   arena    ff_arena_bytes() bytes aligned to FF_ARENA_ALIGN; its content need not survive calls
 * Returns FF_OK, FF_STATUS_BAD_DIMS, or a positive status naming the node that
 * refused its data (e.g. a Gather index out of range).
 */
int ff_run(const void* const* inputs, void* const* outputs, const int64_t* dims,
           const unsigned char* weights, unsigned char* arena);

/* The shape of output k for the symbol values `dims`: writes ff_tensor_rank(FF_OUTPUT, k)
 * entries to `shape`. Returns 0, or -1 for an unknown k. */
int ff_output_shape(int k, const int64_t* dims, int64_t* shape);

/* The size of the arena ff_run needs, in bytes. */
int64_t ff_arena_bytes(void);

/* The thread count of later calls; 0 means OpenMP's default (every core, or OMP_NUM_THREADS).
 * It applies to every call into this library. */
void ff_set_threads(int n);

/* FF_ABI_VERSION of the header the library was generated for. */
int ff_abi_version(void);

/* ---- what the model takes and returns ------------------------------------------ */

/* The number of inputs (io = FF_INPUT) or outputs (FF_OUTPUT); -1 for another io. */
int ff_tensor_count(int io);

/* The name of input or output k; NULL when there is no such tensor. */
const char* ff_tensor_name(int io, int k);

/* Its element type (an FF_DTYPE_ code); -1 when there is no such tensor. */
int ff_tensor_dtype(int io, int k);

/* Its rank; -1 when there is no such tensor. */
int ff_tensor_rank(int io, int k);

/* Writes its rank's worth of dims (see FF_DIM_SYMBOL) to `dims`; returns 0, or -1 when there
 * is no such tensor. */
int ff_tensor_dims(int io, int k, int64_t* dims);

/* The number of symbols: the length of ff_run's `dims`. */
int ff_symbol_count(void);

/* The name of symbol s (e.g. "batch"); NULL when there is no such symbol. */
const char* ff_symbol_name(int s);

/* The largest value symbol s may take (the arena is planned for it); -1 when there is none. */
int64_t ff_symbol_max(int s);

/* What ff_run's return value `code` means; never NULL. */
const char* ff_status_message(int code);

/* How many bytes of the weights data section the library reads (0 without weights). */
int64_t ff_weights_bytes(void);

/* ---- kernel timing (meaningful in builds compiled with profile=True) ------------- */

/* The kernel kinds, comma-separated ("gemm,attention,..."); "" in a plain build. */
const char* ff_profile_names(void);

/* Milliseconds per kind since the load or the last reset, written to out[0..n); returns the
 * number of kinds (0 in a plain build). */
int ff_profile(double* out, int n);

/* Zero the totals. */
void ff_profile_reset(void);

/* ---- function pointer types, for callers that dlsym the library --------------- */

typedef int (*ff_run_fn)(const void* const*, void* const*, const int64_t*, const unsigned char*,
                         unsigned char*);
typedef int (*ff_output_shape_fn)(int, const int64_t*, int64_t*);
typedef int64_t (*ff_arena_bytes_fn)(void);
typedef void (*ff_set_threads_fn)(int);
typedef int (*ff_abi_version_fn)(void);
typedef int (*ff_tensor_count_fn)(int);
typedef const char* (*ff_tensor_name_fn)(int, int);
typedef int (*ff_tensor_dtype_fn)(int, int);
typedef int (*ff_tensor_rank_fn)(int, int);
typedef int (*ff_tensor_dims_fn)(int, int, int64_t*);
typedef int (*ff_symbol_count_fn)(void);
typedef const char* (*ff_symbol_name_fn)(int);
typedef int64_t (*ff_symbol_max_fn)(int);
typedef const char* (*ff_status_message_fn)(int);
typedef int64_t (*ff_weights_bytes_fn)(void);

/* The size in bytes of one element of `dtype` (an FF_DTYPE_ code); 0 for an unknown code. */
static inline int64_t ff_dtype_size(int dtype) {
    switch (dtype) {
    case FF_DTYPE_UINT8: case FF_DTYPE_INT8: case FF_DTYPE_BOOL: return 1;
    case FF_DTYPE_UINT16: case FF_DTYPE_INT16: return 2;
    case FF_DTYPE_FLOAT32: case FF_DTYPE_INT32: case FF_DTYPE_UINT32: return 4;
    case FF_DTYPE_FLOAT64: case FF_DTYPE_INT64: case FF_DTYPE_UINT64: return 8;
    default: return 0;
    }
}

/* The numpy spelling of `dtype` ("float32", ...); "unknown" for an unknown code. */
static inline const char* ff_dtype_name(int dtype) {
    switch (dtype) {
    case FF_DTYPE_FLOAT32: return "float32";
    case FF_DTYPE_UINT8: return "uint8";
    case FF_DTYPE_INT8: return "int8";
    case FF_DTYPE_UINT16: return "uint16";
    case FF_DTYPE_INT16: return "int16";
    case FF_DTYPE_INT32: return "int32";
    case FF_DTYPE_INT64: return "int64";
    case FF_DTYPE_BOOL: return "bool";
    case FF_DTYPE_FLOAT64: return "float64";
    case FF_DTYPE_UINT32: return "uint32";
    case FF_DTYPE_UINT64: return "uint64";
    default: return "unknown";
    }
}

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* FUSEFORMER_H */
