import os
import tempfile

# Before anything imports keras or nbconv: CPU torch backend, and a private tuning DB.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ["NBCONV_TUNING_DB"] = os.path.join(tempfile.mkdtemp(prefix="nbconv-test-"), "tuning.sqlite")

from hypothesis import HealthCheck, settings  # noqa: E402

# deadline=None: the first example of a kernel pays its Numba compile.
settings.register_profile("nbconv", deadline=None, max_examples=30, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "nbconv"))
