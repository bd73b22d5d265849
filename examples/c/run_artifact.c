/*
 * run_artifact: load a fuseformer CPU artifact and run it, without Python.
 *
 *   run_artifact ARTIFACT_DIR [-d NAME=VALUE]... [-i FILE]... [-o PREFIX] [-t THREADS] [-r REPEAT]
 *
 *   -d NAME=VALUE  the value of a symbolic dim (e.g. -d batch=1); default: its compiled maximum
 *   -i FILE        raw data of the next input, in input order: C-order elements in the
 *                  machine's byte order (little-endian on x86-64), as numpy's tofile()
 *                  writes them. Inputs without a file get a fixed pattern (floats in
 *                  [-1, 1], integers and bools 1).
 *   -o PREFIX      write output k to PREFIX<k>.bin, in the same raw format
 *   -t THREADS     thread count (default 0: every core, or OMP_NUM_THREADS)
 *   -r REPEAT      run REPEAT times and print the median latency
 *
 * It prints the model's inputs and outputs, then one line per output: its shape,
 * the sum of its elements and an FNV-1a hash of its bytes (equal hashes mean
 * bit-identical outputs). Exit status: 0 on success, 1 on any error, 2 on bad usage.
 *
 * Build (from this directory; the Makefile does the same):
 *   gcc -std=c99 -O2 -Wall -Wextra -I ../../backends/cpu/include run_artifact.c -ldl -o run_artifact
 *
 * The library finds OpenBLAS through the rpath it was linked with (the
 * scipy-openblas32 wheel of the Python environment that compiled it); if that
 * environment moved, put the wheel's lib directory on LD_LIBRARY_PATH.
 */
#define _POSIX_C_SOURCE 200809L /* mmap, posix_memalign, clock_gettime under -std=c99 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuseformer.h"

#define MAX_INPUT_FILES 64
#define MAX_DIM_ARGS 64

/* The library's entry points, resolved once with dlsym. */
struct api {
    ff_abi_version_fn abi_version;
    ff_run_fn run;
    ff_output_shape_fn output_shape;
    ff_arena_bytes_fn arena_bytes;
    ff_set_threads_fn set_threads;
    ff_tensor_count_fn tensor_count;
    ff_tensor_name_fn tensor_name;
    ff_tensor_dtype_fn tensor_dtype;
    ff_tensor_rank_fn tensor_rank;
    ff_tensor_dims_fn tensor_dims;
    ff_symbol_count_fn symbol_count;
    ff_symbol_name_fn symbol_name;
    ff_symbol_max_fn symbol_max;
    ff_status_message_fn status_message;
    ff_weights_bytes_fn weights_bytes;
};

/* A tensor the program owns: shape, element type, contiguous data. */
struct tensor {
    int dtype;
    int rank;
    int64_t* shape;
    int64_t numel;
    int64_t nbytes;
    void* data;
};

static void fail(const char* fmt, const char* detail) {
    fprintf(stderr, "run_artifact: ");
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    exit(1);
}

static void* xmalloc(size_t n) {
    void* p = malloc(n ? n : 1);
    if (!p) fail("out of memory%s", "");
    return p;
}

/* 64-byte aligned memory of at least n bytes (rounded up, and never 0 bytes). */
static void* aligned_bytes(int64_t n) {
    void* p = NULL;
    size_t size = (size_t)((n + FF_ARENA_ALIGN - 1) / FF_ARENA_ALIGN * FF_ARENA_ALIGN);
    if (posix_memalign(&p, FF_ARENA_ALIGN, size ? size : FF_ARENA_ALIGN) != 0) fail("out of memory%s", "");
    return p;
}

/* dlsym into a function pointer. ISO C has no cast from void* to a function
 * pointer; POSIX guarantees both have the same representation, so copy the bits. */
static void resolve(void* lib, const char* name, void* fn_ptr, size_t size) {
    void* sym;
    dlerror();
    sym = dlsym(lib, name);
    if (!sym) {
        fprintf(stderr, "run_artifact: the library exports no %s (%s): it predates this header; "
                        "recompile the model\n", name, dlerror());
        exit(1);
    }
    memcpy(fn_ptr, &sym, size);
}

#define RESOLVE(lib, api, field, name) resolve((lib), (name), &(api)->field, sizeof((api)->field))

static void load_api(void* lib, struct api* api) {
    RESOLVE(lib, api, abi_version, "ff_abi_version");
    if (api->abi_version() != FF_ABI_VERSION) {
        fprintf(stderr, "run_artifact: the library has ABI %d, this program speaks ABI %d: recompile the "
                        "model\n", api->abi_version(), FF_ABI_VERSION);
        exit(1);
    }
    RESOLVE(lib, api, run, "ff_run");
    RESOLVE(lib, api, output_shape, "ff_output_shape");
    RESOLVE(lib, api, arena_bytes, "ff_arena_bytes");
    RESOLVE(lib, api, set_threads, "ff_set_threads");
    RESOLVE(lib, api, tensor_count, "ff_tensor_count");
    RESOLVE(lib, api, tensor_name, "ff_tensor_name");
    RESOLVE(lib, api, tensor_dtype, "ff_tensor_dtype");
    RESOLVE(lib, api, tensor_rank, "ff_tensor_rank");
    RESOLVE(lib, api, tensor_dims, "ff_tensor_dims");
    RESOLVE(lib, api, symbol_count, "ff_symbol_count");
    RESOLVE(lib, api, symbol_name, "ff_symbol_name");
    RESOLVE(lib, api, symbol_max, "ff_symbol_max");
    RESOLVE(lib, api, status_message, "ff_status_message");
    RESOLVE(lib, api, weights_bytes, "ff_weights_bytes");
}

static char* join_path(const char* dir, const char* name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char* path = xmalloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    return path;
}

/* Model names are arbitrary text: print control characters, quotes and
 * backslashes escaped so a name cannot garble the terminal or the line format. */
static void print_name(const char* name) {
    const unsigned char* p = (const unsigned char*)name;
    putchar('"');
    for (; *p; ++p) {
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') printf("\\x%02x", *p);
        else putchar(*p);
    }
    putchar('"');
}

/* ---- weights: map the file, find the safetensors data section ---------------- */

struct weights {
    void* map;
    size_t size;
    const unsigned char* data; /* what ff_run takes */
};

static void map_weights(const char* path, int64_t needed, struct weights* w) {
    struct stat st;
    const unsigned char* bytes;
    uint64_t header = 0;
    int i;
    int fd = open(path, O_RDONLY);
    if (fd < 0) fail("cannot open %s", path);
    if (fstat(fd, &st) != 0) fail("cannot stat %s", path);
    if (st.st_size < 8) fail("%s is not a safetensors file (shorter than its 8-byte header length)", path);
    w->size = (size_t)st.st_size;
    w->map = mmap(NULL, w->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file open */
    if (w->map == MAP_FAILED) fail("cannot map %s", path);
    bytes = w->map;
    /* the header length is little-endian whatever the host's byte order */
    for (i = 7; i >= 0; --i) header = (header << 8) | bytes[i];
    if (header > w->size - 8) fail("%s is truncated inside its JSON header", path);
    /* the library reads [0, needed) of the data section: refuse a file that ends earlier */
    if ((uint64_t)needed > w->size - 8 - header) fail("%s is shorter than the model's weights", path);
    w->data = bytes + 8 + header;
}

/* ---- inputs ------------------------------------------------------------------ */

static int64_t numel_of(const int64_t* shape, int rank) {
    int64_t n = 1;
    int i;
    for (i = 0; i < rank; ++i) n *= shape[i];
    return n;
}

static void fill_pattern(struct tensor* t) {
    int64_t i;
    for (i = 0; i < t->numel; ++i) {
        /* a spread of values in [-1, 1] exercises more of the model than a constant */
        double x = (double)((i * 7919) % 2001) / 1000.0 - 1.0;
        switch (t->dtype) {
        case FF_DTYPE_FLOAT32: ((float*)t->data)[i] = (float)x; break;
        case FF_DTYPE_FLOAT64: ((double*)t->data)[i] = x; break;
        /* integers are often token ids, masks or positions: 1 is valid for all of them */
        case FF_DTYPE_INT64: ((int64_t*)t->data)[i] = 1; break;
        case FF_DTYPE_UINT64: ((uint64_t*)t->data)[i] = 1; break;
        case FF_DTYPE_INT32: ((int32_t*)t->data)[i] = 1; break;
        case FF_DTYPE_UINT32: ((uint32_t*)t->data)[i] = 1; break;
        case FF_DTYPE_INT16: ((int16_t*)t->data)[i] = 1; break;
        case FF_DTYPE_UINT16: ((uint16_t*)t->data)[i] = 1; break;
        default: ((unsigned char*)t->data)[i] = 1; break; /* int8, uint8, bool: one byte */
        }
    }
}

static void read_input(const char* path, struct tensor* t) {
    struct stat st;
    FILE* f = fopen(path, "rb");
    if (!f) fail("cannot open input file %s", path);
    if (fstat(fileno(f), &st) != 0) fail("cannot stat %s", path);
    if ((int64_t)st.st_size != t->nbytes) {
        fprintf(stderr, "run_artifact: %s holds %" PRId64 " bytes; the input needs %" PRId64 " (%" PRId64
                " elements of %s)\n", path, (int64_t)st.st_size, t->nbytes, t->numel, ff_dtype_name(t->dtype));
        exit(1);
    }
    if (t->nbytes && fread(t->data, (size_t)t->nbytes, 1, f) != 1) fail("cannot read %s", path);
    fclose(f);
}

/* ---- outputs ----------------------------------------------------------------- */

static double element_sum(const struct tensor* t) {
    double s = 0.0;
    int64_t i;
    for (i = 0; i < t->numel; ++i) {
        switch (t->dtype) {
        case FF_DTYPE_FLOAT32: s += ((const float*)t->data)[i]; break;
        case FF_DTYPE_FLOAT64: s += ((const double*)t->data)[i]; break;
        case FF_DTYPE_INT64: s += (double)((const int64_t*)t->data)[i]; break;
        case FF_DTYPE_UINT64: s += (double)((const uint64_t*)t->data)[i]; break;
        case FF_DTYPE_INT32: s += ((const int32_t*)t->data)[i]; break;
        case FF_DTYPE_UINT32: s += ((const uint32_t*)t->data)[i]; break;
        case FF_DTYPE_INT16: s += ((const int16_t*)t->data)[i]; break;
        case FF_DTYPE_UINT16: s += ((const uint16_t*)t->data)[i]; break;
        case FF_DTYPE_INT8: s += ((const int8_t*)t->data)[i]; break;
        default: s += ((const unsigned char*)t->data)[i]; break; /* uint8, bool */
        }
    }
    return s;
}

/* 64-bit FNV-1a: a short fingerprint that changes with any bit of the output. */
static uint64_t fnv1a(const void* data, int64_t n) {
    const unsigned char* p = data;
    uint64_t h = UINT64_C(14695981039346656037);
    int64_t i;
    for (i = 0; i < n; ++i) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static void write_output(const char* prefix, int k, const struct tensor* t) {
    size_t n = strlen(prefix) + 32;
    char* path = xmalloc(n);
    FILE* f;
    snprintf(path, n, "%s%d.bin", prefix, k);
    f = fopen(path, "wb");
    if (!f) fail("cannot create %s", path);
    if (t->nbytes && fwrite(t->data, (size_t)t->nbytes, 1, f) != 1) fail("cannot write %s", path);
    if (fclose(f) != 0) fail("cannot write %s", path);
    free(path);
}

/* ---- the spec and the command line ---------------------------------------------- */

static void print_tensor_spec(const struct api* api, int io, int k) {
    int rank = api->tensor_rank(io, k), i;
    int64_t* dims = xmalloc(sizeof(int64_t) * (size_t)(rank > 0 ? rank : 1));
    api->tensor_dims(io, k, dims);
    printf("%s %d ", io == FF_INPUT ? "input" : "output", k);
    print_name(api->tensor_name(io, k));
    printf(" %s [", ff_dtype_name(api->tensor_dtype(io, k)));
    for (i = 0; i < rank; ++i) {
        if (i) printf(", ");
        if (dims[i] >= 0) printf("%" PRId64, dims[i]);
        else if (FF_DIM_IS_SYMBOL(dims[i])) print_name(api->symbol_name(FF_DIM_SYMBOL_INDEX(dims[i])));
        else printf("?");
    }
    printf("]\n");
    free(dims);
}

static void usage(void) {
    fprintf(stderr, "usage: run_artifact ARTIFACT_DIR [-d NAME=VALUE]... [-i FILE]... [-o PREFIX] "
                    "[-t THREADS] [-r REPEAT]\n");
    exit(2);
}

static long parse_long(const char* text, long lo, long hi) {
    char* end;
    long v;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "run_artifact: %s is not a number in [%ld, %ld]\n", text, lo, hi);
        exit(2);
    }
    return v;
}

static int compare_doubles(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
    const char* dir = NULL;
    const char* input_files[MAX_INPUT_FILES];
    const char* dim_args[MAX_DIM_ARGS];
    const char* prefix = NULL;
    int n_files = 0, n_dim_args = 0, threads = 0, repeat = 1;
    int n_in, n_out, n_sym, i, k, a;
    char *lib_path, *weights_path;
    void* lib;
    struct api api;
    struct weights weights;
    int64_t* dims;
    struct tensor *ins, *outs;
    const void** in_ptrs;
    void** out_ptrs;
    unsigned char* arena;
    double* times;

    for (a = 1; a < argc; ++a) {
        const char* arg = argv[a];
        if (arg[0] == '-' && arg[1] && !arg[2] && strchr("diotr", arg[1])) {
            if (a + 1 >= argc) usage();
            const char* value = argv[++a];
            switch (arg[1]) {
            case 'd':
                if (n_dim_args == MAX_DIM_ARGS) fail("too many -d options%s", "");
                dim_args[n_dim_args++] = value;
                break;
            case 'i':
                if (n_files == MAX_INPUT_FILES) fail("too many -i options%s", "");
                input_files[n_files++] = value;
                break;
            case 'o': prefix = value; break;
            case 't': threads = (int)parse_long(value, 0, 4096); break;
            default: repeat = (int)parse_long(value, 1, 1000000); break;
            }
        } else if (!dir && arg[0] != '-') {
            dir = arg;
        } else {
            usage();
        }
    }
    if (!dir) usage();

    /* 1. the library. RTLD_NOW: a missing dependency fails here, not in the middle of a run. */
    lib_path = join_path(dir, FF_LIBRARY_FILE);
    lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) fail("cannot load the library: %s", dlerror());
    load_api(lib, &api);

    /* 2. the weights */
    weights_path = join_path(dir, FF_WEIGHTS_FILE);
    map_weights(weights_path, api.weights_bytes(), &weights);

    n_in = api.tensor_count(FF_INPUT);
    n_out = api.tensor_count(FF_OUTPUT);
    n_sym = api.symbol_count();
    for (k = 0; k < n_in; ++k) print_tensor_spec(&api, FF_INPUT, k);
    for (k = 0; k < n_out; ++k) print_tensor_spec(&api, FF_OUTPUT, k);
    if (n_files > n_in) {
        fprintf(stderr, "run_artifact: %d input files for %d inputs\n", n_files, n_in);
        return 2;
    }

    /* 4. the symbol values: the compiled maxima unless -d says otherwise */
    dims = xmalloc(sizeof(int64_t) * (size_t)(n_sym > 0 ? n_sym : 1));
    for (i = 0; i < n_sym; ++i) dims[i] = api.symbol_max(i);
    for (a = 0; a < n_dim_args; ++a) {
        const char* eq = strchr(dim_args[a], '=');
        size_t len;
        int found = 0;
        if (!eq) usage();
        len = (size_t)(eq - dim_args[a]);
        for (i = 0; i < n_sym; ++i) {
            const char* name = api.symbol_name(i);
            if (strlen(name) == len && strncmp(name, dim_args[a], len) == 0) {
                dims[i] = parse_long(eq + 1, 1, LONG_MAX);
                if (dims[i] > api.symbol_max(i)) {
                    fprintf(stderr, "run_artifact: %s is above the compiled maximum %" PRId64
                            " (recompile with a larger one)\n", dim_args[a], api.symbol_max(i));
                    return 2;
                }
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "run_artifact: -d %s: the model has no such symbolic dim; it has:", dim_args[a]);
            for (i = 0; i < n_sym; ++i) fprintf(stderr, " %s", api.symbol_name(i));
            fprintf(stderr, "%s\n", n_sym ? "" : " none");
            return 2;
        }
    }
    for (i = 0; i < n_sym; ++i) {
        printf("symbol %d ", i);
        print_name(api.symbol_name(i));
        printf(" = %" PRId64 " (max %" PRId64 ")\n", dims[i], api.symbol_max(i));
    }

    /* 5. inputs (the symbol values fill in their shapes), outputs, arena */
    ins = xmalloc(sizeof(struct tensor) * (size_t)(n_in > 0 ? n_in : 1));
    in_ptrs = xmalloc(sizeof(void*) * (size_t)(n_in > 0 ? n_in : 1));
    for (k = 0; k < n_in; ++k) {
        struct tensor* t = &ins[k];
        t->dtype = api.tensor_dtype(FF_INPUT, k);
        t->rank = api.tensor_rank(FF_INPUT, k);
        t->shape = xmalloc(sizeof(int64_t) * (size_t)(t->rank > 0 ? t->rank : 1));
        api.tensor_dims(FF_INPUT, k, t->shape);
        for (i = 0; i < t->rank; ++i)
            if (t->shape[i] < 0) t->shape[i] = dims[FF_DIM_SYMBOL_INDEX(t->shape[i])];
        t->numel = numel_of(t->shape, t->rank);
        t->nbytes = t->numel * ff_dtype_size(t->dtype);
        t->data = aligned_bytes(t->nbytes);
        if (k < n_files) read_input(input_files[k], t);
        else fill_pattern(t);
        in_ptrs[k] = t->data;
    }
    outs = xmalloc(sizeof(struct tensor) * (size_t)(n_out > 0 ? n_out : 1));
    out_ptrs = xmalloc(sizeof(void*) * (size_t)(n_out > 0 ? n_out : 1));
    for (k = 0; k < n_out; ++k) {
        struct tensor* t = &outs[k];
        t->dtype = api.tensor_dtype(FF_OUTPUT, k);
        t->rank = api.tensor_rank(FF_OUTPUT, k);
        t->shape = xmalloc(sizeof(int64_t) * (size_t)(t->rank > 0 ? t->rank : 1));
        if (api.output_shape(k, dims, t->shape) != 0) fail("the library has no output shape for output%s", "");
        t->numel = numel_of(t->shape, t->rank);
        t->nbytes = t->numel * ff_dtype_size(t->dtype);
        t->data = aligned_bytes(t->nbytes);
        out_ptrs[k] = t->data;
    }
    /* 3. one arena for every call */
    arena = aligned_bytes(api.arena_bytes());

    /* run */
    api.set_threads(threads);
    times = xmalloc(sizeof(double) * (size_t)repeat);
    for (a = 0; a < repeat; ++a) {
        double t0 = now_ms();
        int code = api.run(in_ptrs, out_ptrs, dims, weights.data, arena);
        times[a] = now_ms() - t0;
        if (code != FF_OK) {
            fprintf(stderr, "run_artifact: the model refused its inputs (status %d): %s\n", code,
                    api.status_message(code));
            return 1;
        }
    }
    qsort(times, (size_t)repeat, sizeof(double), compare_doubles);

    for (k = 0; k < n_out; ++k) {
        const struct tensor* t = &outs[k];
        printf("result %d ", k);
        print_name(api.tensor_name(FF_OUTPUT, k));
        printf(" %s [", ff_dtype_name(t->dtype));
        for (i = 0; i < t->rank; ++i) printf(i ? ", %" PRId64 : "%" PRId64, t->shape[i]);
        printf("] sum=%.9g fnv1a=%016" PRIx64 "\n", element_sum(t), fnv1a(t->data, t->nbytes));
        if (prefix) write_output(prefix, k, t);
    }
    printf("latency: median %.3f ms over %d run%s\n", times[repeat / 2], repeat, repeat == 1 ? "" : "s");

    /* tidy up, as a long-running host would */
    for (k = 0; k < n_in; ++k) { free(ins[k].shape); free(ins[k].data); }
    for (k = 0; k < n_out; ++k) { free(outs[k].shape); free(outs[k].data); }
    free(ins); free(outs); free(in_ptrs); free(out_ptrs); free(arena); free(times); free(dims);
    munmap(weights.map, weights.size);
    /* no dlclose: the OpenMP runtime the library brought in keeps idle worker threads,
     * which would crash if their code were unmapped before the process exits */
    free(lib_path); free(weights_path);
    return 0;
}
