"""Run ``python -m mlpack`` with the cycle collector off (memory tests: what is not freed
by reference counting stays)."""

import gc
import runpy

gc.disable()
runpy.run_module("mlpack", run_name="__main__", alter_sys=True)
