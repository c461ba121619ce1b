"""Tooling around the model, apart from the book's chapters: the command line and its flags,
the benchmarks (a step against PyTorch, a profile, nanoGPT's recipe, a size sweep), the PyTorch
twin the tests and benchmarks compare with, checkpoint files and format versions, atomic writes,
and the strict CPU double of CuPy that proves the GPU path in CI."""
