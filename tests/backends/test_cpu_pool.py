"""The kernels' thread pool (backends/cpu/include/fuseformer/pool.h), driven from C++.

Every row of every job is run exactly once, and no chunk of a job runs after the job has
returned (its closure and buffers are gone then): checked by counting, over a million
jobs of 2-4 threads, and under ThreadSanitizer, which reports the race as a data race or
heap-use-after-free. (Before the pool read a job's state from one word, a late worker
could claim a chunk of a job that had already finished: about once in 600,000 jobs here,
and three times in every TSan run of this program.)
"""
from __future__ import annotations

import subprocess

import pytest

from fuseformer.backends.cpu.build import INCLUDE_DIR, blas, find_compiler

PROGRAM = r"""
#include "fuseformer/kernels.h"
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>
using namespace ff;

int main(int argc, char** argv) {
    const int reps = std::atoi(argv[1]);
    std::atomic<int> active{0};
    long wrong = 0, late = 0;
    for (int nt : {2, 3, 4}) {
        g_threads = nt;
        for (int rep = 0; rep < reps; ++rep) {
            const int64_t m = 1 + (rep * 37) % 300;
            std::vector<int> rows(m, 0), plain(m, 0);  // freed when the job is over
            parallel_rows(m, rep % 2 ? kRowAlign : 1, true, [&](int64_t lo, int64_t hi) {
                active++;
                for (int64_t r = lo; r < hi; ++r) rows[r]++;
                active--;
            });
            late += active.load() != 0;
            parallel_for(m, true, [&](int64_t lo, int64_t hi) {
                active++;
                for (int64_t r = lo; r < hi; ++r) plain[r]++;
                active--;
            });
            late += active.load() != 0;
            for (int64_t r = 0; r < m; ++r) wrong += (rows[r] != 1) + (plain[r] != 1);
        }
    }
    std::printf("wrong %ld late %ld\n", wrong, late);
    return wrong || late;
}
"""


def _build(tmp_path, flags: list[str]):
    include, libdir, name = blas()
    src = tmp_path / "pool_test.cpp"
    src.write_text(PROGRAM)
    exe = tmp_path / ("pool_test" + "".join(f for f in flags if f.startswith("-fsan")))
    cmd = [find_compiler(), "-std=c++17", "-march=native", "-fopenmp", "-Wno-psabi", *flags,
           "-I", str(INCLUDE_DIR), "-I", include, str(src), "-o", str(exe),
           "-L", libdir, f"-l{name}", f"-Wl,-rpath,{libdir}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    return exe, done


def test_every_row_once_and_no_chunk_after_its_job(tmp_path):
    exe, built = _build(tmp_path, ["-O2"])
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(exe), "200000"], capture_output=True, text=True, timeout=300)
    assert ran.stdout.strip() == "wrong 0 late 0", ran.stdout + ran.stderr


def test_no_race_under_thread_sanitizer(tmp_path):
    exe, built = _build(tmp_path, ["-O1", "-g", "-fsanitize=thread"])
    if built.returncode != 0:
        pytest.skip(f"this toolchain builds no ThreadSanitizer program: {built.stderr[-300:]}")
    ran = subprocess.run([str(exe), "3000"], capture_output=True, text=True, timeout=600)
    assert "WARNING: ThreadSanitizer" not in ran.stderr, ran.stderr[:3000]
    assert ran.returncode == 0 and ran.stdout.strip() == "wrong 0 late 0", ran.stdout + ran.stderr[:2000]
