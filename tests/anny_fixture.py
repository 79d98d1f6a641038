"""The Anny body shared by the body-model tests: built once per machine, loaded once per run.

The first run on a fresh machine builds Anny's compact model file (~60 s, see
humansplat.prior.body.ensure_anny_cache) and says how long it took; later runs load it in
well under a second."""

import time

import pytest
import torch


@pytest.fixture(scope="session")
def anny_body(request):
    from humansplat.prior.body import AnnyBody, anny_cache_dir, ensure_anny_cache

    t0 = time.perf_counter()
    ensure_anny_cache()
    built = time.perf_counter() - t0
    if built > 5.0:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"built Anny's model cache in {anny_cache_dir()} in {built:.0f} s (once per machine)"
        if reporter is not None:
            reporter.write_line(msg)
        else:
            print(msg)
    with torch.no_grad():
        return AnnyBody()
