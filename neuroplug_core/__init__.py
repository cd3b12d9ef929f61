"""Compiled hot loops of neuroplug (Cython, GIL released, OpenMP where it pays).

This package knows nothing of the Python objects above it (DESIGN rule 4): its
functions take typed memoryviews and plain numbers, check nothing that the
Python wrapper in :mod:`neuroplug.backends.cython_ops` already checked, and
return arrays.  Never call it directly; go through an ``Ops`` instance.
"""
