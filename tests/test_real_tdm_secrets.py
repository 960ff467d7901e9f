"""No secret of the real TDM leaves through us: the real TDM (../shared/tdm-src) at -vvvv, so its log.txt
carries the OAuth token, with the bridge inside its process, supervised by `twitchminert run` against the
offline mock. Every answer we serve (the bridge's routes included), our data folder (store and captured
output) and our own log are searched for the token and the cookie values of its cookies.jar.
"""

from __future__ import annotations

import json

from conftest import MOCK_TOKEN, wait_until
from realtdm import real_tdm, tdm_runtime  # noqa: F401  (fixtures)
from test_real_tdm import mining_with_progress
from test_secrets import COOKIE_VALUES, answers, assert_no_secret, stored_bytes


def test_real_tdm_at_vvvv_leaks_no_token_or_cookie(real_tdm, tdm_runtime) -> None:
    tdm = real_tdm(start=False, python=None)
    # `PYTHON main.py ARGS` is still a source install: the launcher (and the bridge) wraps it.
    command = [str(tdm_runtime.python), str(tdm.tdm_dir / "main.py"), "-vvvv", "--log"]
    tdm.write_config(miner=f"command: {json.dumps(command)}")
    tdm.start()
    tdm.wait_status(mining_with_progress, what="mining with progress")
    wait_until(lambda: tdm.get_json("/api/channels"), 30, what="the bridge's channel list")

    log_txt = tdm.tdm_dir / "log.txt"
    wait_until(lambda: log_txt.is_file() and MOCK_TOKEN in log_txt.read_text(errors="replace"), 30,
               what="TDM's -vvvv log to carry the token (else this test proves nothing)")

    seen: dict[str, str | bytes] = dict(answers(tdm.daemon))
    seen.update(stored_bytes(tdm.data_dir))
    seen["our log"] = tdm.output()
    assert any(name.endswith("miner_output.log") for name in seen), sorted(seen)
    assert_no_secret(seen, (MOCK_TOKEN, *COOKIE_VALUES))
