import os

import pytest

# The kubernetes client honours proxy variables; keep test traffic on loopback.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ["no_proxy"] = os.environ["NO_PROXY"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter):
    """After pytest's own summary (`-ra` lists each skip with its reason), one line that says skips happened.

    A skipped test is a check that did not run on this machine (a tool missing, a port taken): it must not
    pass for green unnoticed.
    """
    result = yield
    skipped = len(terminalreporter.stats.get("skipped", []))
    if skipped:
        terminalreporter.write_sep("!", f"{skipped} skipped: {'this test' if skipped == 1 else 'these tests'} did not "
                                   "run here (reasons in the SKIPPED lines above)", yellow=True, bold=True)
    return result
