"""What happens in each scenario, as plain data.

Times are simulated minutes (one real second each at the default `--speed 60`). A `(low, high)` period
means "again after a random number of minutes in that range", drawn from the `--seed`ed generator.
"""

from __future__ import annotations

from dataclasses import dataclass

Period = tuple[int, int]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    login_required: bool = False  # no cookie: device-code login, waits for the Login button (SIGUSR2)
    maintenance_minutes: int = 60  # "Maintenance task waiting until: ... (Reload)" period
    # background websocket messages
    ws_reconnect_every: Period | None = (40, 70)
    unknown_state_every: Period | None = (15, 30)
    channel_update_every: Period | None = (10, 20)
    channel_offline_every: Period | None = None  # the watched channel goes offline
    channel_back_after: Period = (4, 8)  # an offline channel comes back online
    unknown_claim_every: Period | None = None  # the two-line "non-existing drop" ERROR
    unknown_payload_every: Period | None = None
    # mining
    gql_progress_every: int | None = None  # every Nth progress line comes from GQL
    fetch_retry_every: int | None = None  # inventory fetches 1, 1+N, ... retry a service error once
    claim_fail_every: int | None = None  # claims 1, 1+N, ... fail (and are claimed at the next fetch)
    stall_after: int | None = None  # progress stops once the active drop has this many minutes
    # endings
    fatal_fetch: int | None = None  # this inventory fetch (1-based) fails: "Fatal error encountered"
    close_after_fatal: bool = False  # the window is closed at once after "Application Terminated"
    watch_crash_after: int | None = None  # _watch_loop crashes after this many watched minutes


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "happy",
            "restored login, mines drop after drop, claims, hourly maintenance, now and then an "
            "unknown stream state, a channel update or a websocket reconnect",
        ),
        Scenario(
            "flaky",
            "keeps mining through websocket reconnects, GQL retries, channels going offline, "
            "failed claims, GQL progress and the two-line non-existing drop ERROR",
            ws_reconnect_every=(8, 15),
            unknown_state_every=(15, 25),
            channel_update_every=(10, 20),
            channel_offline_every=(10, 16),
            unknown_claim_every=(12, 20),
            unknown_payload_every=(20, 30),
            gql_progress_every=3,
            fetch_retry_every=2,
            claim_fail_every=3,
        ),
        Scenario(
            "crash",
            "mines 4 minutes, then the reload's inventory fetch fails: a retried service error, "
            "the GUI-only fatal error, and the window is closed at once: exit 1",
            maintenance_minutes=4,
            fatal_fetch=2,
            close_after_fatal=True,
        ),
        Scenario(
            "terminated",
            "mines 3 minutes, then _watch_loop crashes (ERROR + traceback): Application Terminated, "
            "the process stays alive until the window is closed (SIGUSR1: exit 0) or it is killed",
            watch_crash_after=3,
        ),
        Scenario(
            "stall",
            "mines 3 minutes of the first drop, then the progress stops while it keeps watching",
            stall_after=3,
        ),
        Scenario(
            "login-required",
            "no session cookie: 'Please log in to continue.' and waits for the Login button (SIGUSR2)",
            login_required=True,
        ),
    )
}
