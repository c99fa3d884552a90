"""The Zapier app (integrations/zapier) passes its own tests, written with zapier-platform-core's
test tooling, against a live Puente on 127.0.0.1 whose sweeper and worker run meanwhile."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from werkzeug.serving import make_server

from connector import admin, events, rest_hooks
from connector.settings import PROJECT_ROOT
from tests.conftest import drain
from tests.factories import make_issuer
from web import create_app

APP_DIR = PROJECT_ROOT / "integrations" / "zapier"
TIMEOUT_SECONDS = 240


def test_the_zapier_app_passes_its_tests_against_a_live_puente(local_rt, tmp_path: Path):
    node = shutil.which("node")
    assert node, "Node.js is needed for the Zapier app's tests (.ci/run installs it)"
    assert (APP_DIR / "node_modules" / "zapier-platform-core").is_dir(), (
        "run `npm ci` in integrations/zapier (make test does it)"
    )
    make_issuer(local_rt)
    with local_rt.sessions.begin() as s:
        key = admin.create_api_key(s, "zapier", scopes=["read", "write"])
    server = make_server("127.0.0.1", 0, create_app(runtime=local_rt), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log = tmp_path / "node.log"
    env = {
        **os.environ,
        "NODE_ENV": "test",
        "PUENTE_URL": f"http://127.0.0.1:{server.server_port}",
        "PUENTE_API_KEY": key,
    }
    try:
        with log.open("w") as out:
            node_tests = subprocess.Popen(
                [node, "--test", "test/"], cwd=APP_DIR, env=env, stdout=out, stderr=out
            )
            deadline = time.monotonic() + TIMEOUT_SECONDS
            while node_tests.poll() is None:  # what the sweeper and a worker do, meanwhile
                events.dispatch(local_rt)
                rest_hooks.claim_due(local_rt)
                drain(local_rt)
                if time.monotonic() > deadline:
                    node_tests.kill()
                    raise AssertionError(f"the Zapier app's tests took over {TIMEOUT_SECONDS} s")
                time.sleep(0.1)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    output = log.read_text()
    assert node_tests.returncode == 0, output
    assert "# fail 0" in output and "# pass 6" in output, output
