"""Tests run against every registered backend (see ``conftest.py``)."""
