"""Airflow as separate real processes (api-server, scheduler + LocalExecutor, triggerer, dag-processor)
and the REST API v2 helpers the integration tests drive it with.

Unlike ``airflow dags test`` (every task one after another in one process), a run here goes through a
real scheduler, LocalExecutor workers and a triggerer, and a test can stop, restart or kill any of
them mid-run::

    cluster = AirflowCluster({**os.environ}, api_port=free_port(), log_dir=tmp / "airflow-cluster")
    cluster.start()
    status, run = cluster.trigger("ai_discovery_release", {"version": "v7.0.0"})
    cluster.wait_for_task("ai_discovery_release", run["dag_run_id"], "backend.analysis", {"deferred"})
    cluster.restart("scheduler")
    assert cluster.wait_for_run("ai_discovery_release", run["dag_run_id"]) == "success"
    cluster.stop()

Processes of a task in Airflow 3.3 (Task SDK), all in the scheduler's session:

    scheduler                              pgid = scheduler
      └─ LocalExecutor worker              pgid = scheduler   the Task SDK *supervisor* of the task
           └─ task process                 pgid = itself      the TI's ``pid``; runs the operator
                └─ whatever it starts      (terraform, ...)   in the task process's group

The TI's ``pid`` (REST field ``pid``, set when the supervisor calls ``ti_run``) is the *task process*
the supervisor forks, not the supervisor: ``supervisor.py`` reports ``self.pid``, the forked child,
and that child calls ``setpgid(0, 0)`` so its group id is its pid. :meth:`AirflowApi.kill_task`
therefore signals that process group (the task and anything it started). Its supervisor survives,
reaps the killed child (exit code -9), and reports the attempt at once as ``up_for_retry`` (retries
left) or ``failed``; the retry runs after the task's ``retry_delay``. With ``worker=True`` it also
kills the supervisor, as when the worker machine dies: nobody reports anything, the TI stays
``running`` until the scheduler's heartbeat timeout (``TASK_INSTANCE_HEARTBEAT_TIMEOUT`` below)
fails it over to its retry.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from varai_deploy.config import REPO_ROOT
from varai_deploy.local_airflow import warm_execution_api

#: The executor ``airflow.sh`` runs (plugins/varai_deploy/executor.py); ``LocalExecutor`` is Airflow's own.
PROJECT_EXECUTOR = "varai_deploy.executor.LocalExecutor"
#: What ``/api/v2/monitor/health`` reports on, and the Airflow component behind each part.
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")
HEALTH_PART = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dag_processor"}
HEARTBEAT_KEY = {
    "scheduler": "latest_scheduler_heartbeat",
    "triggerer": "latest_triggerer_heartbeat",
    "dag_processor": "latest_dag_processor_heartbeat",
}

#: States a run or a task instance does not leave by itself.
RUN_UNFINISHED = ("queued", "running")
TI_FINAL = ("success", "failed", "skipped", "upstream_failed", "removed")

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

#: Settings for a responsive Airflow on a 2-core machine (a caller's env may override any of them).
TUNING = {
    # LocalExecutor forks [core] parallelism worker processes up front (32 by default): 4 is enough
    # for a release (a mapped task per service, mapped widget channels; deferred tasks take no slot)
    # and leaves the two cores to the tasks instead of idle forks of the scheduler.
    "AIRFLOW__CORE__PARALLELISM": "4",
    # A worker that dies with its supervisor (nobody reports the attempt) is only noticed when its TI
    # has sent no heartbeat for this long (300 s by default); supervisors heartbeat every 5 s
    # ([workers] min_heartbeat_interval), so 30 s is six missed beats, and the check itself runs every
    # 5 s instead of 10: a killed worker's task is failed over to its retry within ~35 s.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # A scheduler that was killed leaves its queued/running TIs owned by its job; the next scheduler
    # adopts or resets them once that job is 30 s without heartbeat ([scheduler]
    # scheduler_health_check_threshold), but only when it checks: every 15 s rather than 300 s.
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
    # Triggers of a killed triggerer move to a live one once it is this long without heartbeat (30 s
    # by default, heartbeat every 5 s): 15 s, so a triggerer crash does not outlast the sandbox's
    # short health and analysis deadlines. A stopped (SIGTERM) triggerer hands over at once.
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    # One parsing process, and the (unchanging) DAG files re-parsed every 10 min instead of 30 s: DAG
    # parsing competes with the tasks for the two cores and the tests never edit a DAG mid-run.
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    # One API server process (uvicorn): the tests send a few requests a second at most.
    "AIRFLOW__API__WORKERS": "1",
    # A database error's cause in its 500 answer (the tests retry a trigger on "database is locked").
    "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
    # No scheduled maintenance window: one that fell due mid-run would hold the environment. The
    # maintenance tests turn the schedules on for their own cluster.
    "VARAI_SCHEDULED_ENVIRONMENT": "none",
}


def free_port(exclude: Iterable[int] = ()) -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (the kernel's choice), not in ``exclude``."""
    excluded = set(exclude)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in excluded:
            return port


# -- REST API v2 --------------------------------------------------------------------------------------
def api_call(
    base_url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    auth: str | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """One JSON request: ``(status, decoded body)``; an empty body is ``{}``, a non-JSON one
    ``{"detail": text}``. ``auth`` replaces the ``Authorization`` header the token would set.
    Connection errors (API server not up) raise ``urllib.error.URLError`` / ``OSError``."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if auth is not None:
        headers["Authorization"] = auth
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, _decode(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read())


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"detail": raw.decode(errors="replace")}


def health(base_url: str) -> dict | None:
    """``/api/v2/monitor/health`` (no auth needed), or None while the API server does not answer."""
    try:
        status, body = api_call(base_url, "GET", "/api/v2/monitor/health", timeout=5)
    except (urllib.error.URLError, OSError):
        return None
    return body if status == 200 else None


def _heartbeat(part_health: dict, part: str) -> float | None:
    stamp = part_health.get(HEARTBEAT_KEY[part]) if part in HEARTBEAT_KEY else None
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def wait_until_healthy(
    base_url: str,
    parts: Iterable[str] = HEALTH_PARTS,
    *,
    timeout: float = 120,
    newer_than: float | None = None,
    check: Callable[[], None] | None = None,
    describe: Callable[[], str] = str,
    what: str = "Airflow",
) -> dict:
    """Wait until the health endpoint reports every part in ``parts`` healthy, and (``newer_than``,
    epoch seconds) with a heartbeat after that moment, so a restarted component is not taken for
    healthy on its dead predecessor's last heartbeat. ``check()`` may assert (a process died);
    ``describe()`` adds e.g. log tails to the timeout's message."""
    parts = tuple(parts)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = health(base_url)
        if last is not None and all(_part_ok(last, part, newer_than) for part in parts):
            return last
        if check is not None:
            check()
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what} did not report {', '.join(parts)} healthy within {timeout:g}s; "
                f"last health: {json.dumps(last)}\n{describe()}"
            )
        time.sleep(1)


def _part_ok(report: dict, part: str, newer_than: float | None) -> bool:
    part_health = report.get(part) or {}
    if part_health.get("status") != "healthy":
        return False
    if newer_than is None or part not in HEARTBEAT_KEY:
        return True
    beat = _heartbeat(part_health, part)
    return beat is not None and beat > newer_than


def admin_password(passwords_file: Path, username: str = "admin") -> str:
    """The SimpleAuthManager password of ``username`` from its passwords file (JSON ``{user: pw}``)."""
    return json.loads(Path(passwords_file).read_text())[username]


def login(base_url: str, password: str, username: str = "admin") -> str:
    """A JWT for the REST API from ``POST /auth/token``."""
    status, body = api_call(base_url, "POST", "/auth/token", body={"username": username, "password": password})
    assert status in (200, 201), f"POST /auth/token as {username}: {status} {body}"
    return body["access_token"]


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class AirflowApi:
    """The REST API v2 of one Airflow API server, with a JWT bearer token."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, auth: str | None = None) -> tuple[int, Any]:
        """One request; a GET the API server was too busy to answer (a timeout on a loaded 2-core
        machine, or a 5xx such as SQLite's "database is locked") is asked twice more, since asking
        again changes nothing."""
        for attempt in range(3):
            try:
                status, answer = api_call(self.base_url, method, path, token=self.token, body=body, auth=auth)
            except TimeoutError:
                if method != "GET" or attempt == 2:
                    raise
                continue
            if method != "GET" or status < 500 or attempt == 2:
                return status, answer
            time.sleep(1)
        raise AssertionError("unreachable")

    def _get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body

    # -- DAGs and runs ------------------------------------------------------------------------------
    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict:
        """Until the dag-processor has registered ``dag_id`` (``GET /dags/{dag_id}`` answers 200)."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.call("GET", f"/api/v2/dags/{_quote(dag_id)}")
            if status == 200:
                return body
            assert time.monotonic() < deadline, f"the dag-processor never registered {dag_id}: {status} {body}"
            time.sleep(1)

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None) -> tuple[int, dict]:
        """``POST /dags/{dag_id}/dagRuns`` (no logical date, like the UI's trigger): ``(status, body)``;
        200 with the run (``body["dag_run_id"]``), 400 with the reason for bad params."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id is not None:
            body["dag_run_id"] = run_id
        for _ in range(3):
            status, answer = self.call("POST", f"/api/v2/dags/{_quote(dag_id)}/dagRuns", body)
            # The tests' metadata DB is SQLite: a write that waited 5 s on the scheduler's and the
            # workers' writes fails with 500 "database is locked" and nothing was created; again.
            if not (status == 500 and "database is locked" in json.dumps(answer)):
                break
            time.sleep(1)
        return status, answer

    def _run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}"

    def run(self, dag_id: str, run_id: str) -> dict:
        return self._get(self._run_path(dag_id, run_id))

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.run(dag_id, run_id)["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        """Until the run is no longer queued or running: its final state. A poll the API server was too
        busy to answer in time (one worker, a loaded machine) is polled again, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = self.run_state(dag_id, run_id)
            except TimeoutError:
                assert time.monotonic() < deadline, f"the API server stopped answering about {dag_id} {run_id}"
                continue
            if state not in RUN_UNFINISHED:
                break
            assert time.monotonic() < deadline, (
                f"{dag_id} {run_id} still {state} after {timeout:g}s:\n{self.describe_run(dag_id, run_id)}"
            )
            time.sleep(2)
        return state

    def end_unfinished_runs(self, dag_id: str) -> list[str]:
        """Mark every queued or running run of ``dag_id`` failed (what an operator does with a run left
        behind): the ids. A test that failed half-way then leaves the next one a free environment
        (the lock of a run no longer running is taken over), not a cascade of "busy" failures."""
        ended = []
        for state in RUN_UNFINISHED:
            runs = self._get(f"/api/v2/dags/{_quote(dag_id)}/dagRuns?state={state}&limit=100")["dag_runs"]
            for run in runs:
                status, body = self.mark_run(dag_id, run["dag_run_id"], "failed")
                assert status == 200, f"mark {run['dag_run_id']} failed: {status} {body}"
                ended.append(run["dag_run_id"])
        return ended

    def mark_run(self, dag_id: str, run_id: str, state: str) -> tuple[int, dict]:
        """``PATCH`` the run's state (``success``, ``failed`` or ``queued``), as the UI's Mark as does."""
        return self.call("PATCH", self._run_path(dag_id, run_id), {"state": state})

    # -- task instances -----------------------------------------------------------------------------
    def task_instances(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict]:
        """Every TI of the run, all pages: ``{(task_id, map_index): ti}`` (map_index -1 if unmapped)."""
        tis: dict[tuple[str, int], dict] = {}
        offset = 0
        while True:
            page = self._get(f"{self._run_path(dag_id, run_id)}/taskInstances?limit=100&offset={offset}&order_by=id")
            batch = list(page["task_instances"])
            tis.update({(ti["task_id"], ti["map_index"]): ti for ti in batch})
            offset += len(batch)
            if not batch or offset >= page.get("total_entries", 0):
                return tis

    # -- Human-in-the-loop ----------------------------------------------------------------------------
    def _hitl_path(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        return f"{self._run_path(dag_id, run_id)}/taskInstances/{_quote(task_id)}/{map_index}/hitlDetails"

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> tuple[int, Any]:
        return self.call("GET", self._hitl_path(dag_id, run_id, task_id, map_index))

    def answer(
        self, dag_id: str, run_id: str, task_id: str, chosen: str, params_input: dict | None = None
    ) -> tuple[int, Any]:
        """``PATCH .../hitlDetails`` as this client's user: ``(status, body)``."""
        body = {"chosen_options": [chosen], "params_input": params_input or {}}
        return self.call("PATCH", self._hitl_path(dag_id, run_id, task_id), body)

    def _ti_path(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{_quote(task_id)}"
        return path if map_index == -1 else f"{path}/{map_index}"

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict | None:
        """One TI, or None while it does not exist (a mapped task not expanded yet)."""
        status, body = self.call("GET", self._ti_path(dag_id, run_id, task_id, map_index))
        if status == 404:
            return None
        assert status == 200, f"GET TI {task_id}[{map_index}]: {status} {body}"
        return body

    def task_tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
        """Every attempt of a TI so far (``/tries``), each with its ``try_number`` and ``state``."""
        return list(self._get(self._ti_path(dag_id, run_id, task_id, map_index) + "/tries")["task_instances"])

    def wait_for_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: Iterable[str],
        map_index: int = -1,
        timeout: float = 240,
        poll: float = 0.5,
    ) -> dict:
        """Until the TI is in one of ``states``: the TI. Fails early when it reached another state it
        cannot leave by itself (success, failed, skipped, upstream_failed, removed). A poll the API
        server was too busy to answer in time (a cluster just started, a loaded machine) is polled
        again, within ``timeout``."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        while True:
            try:
                ti = self.task_instance(dag_id, run_id, task_id, map_index)
            except TimeoutError:
                assert time.monotonic() < deadline, f"the API server stopped answering about {dag_id} {run_id}"
                continue
            state = ti["state"] if ti else None
            if state in wanted:
                return ti
            label = f"{task_id}[{map_index}] of {dag_id} {run_id}"
            assert state not in TI_FINAL, (
                f"{label} ended {state} instead of {sorted(wanted)}:\n{self.describe_run(dag_id, run_id)}"
            )
            assert time.monotonic() < deadline, (
                f"{label} still {state} after {timeout:g}s, expected {sorted(wanted)}:\n"
                f"{self.describe_run(dag_id, run_id)}"
            )
            time.sleep(poll)

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1):
        """The task's return value (deserialized), None when it has none."""
        status, body = self.call(
            "GET",
            f"{self._ti_path(dag_id, run_id, task_id)}/xcomEntries/return_value?map_index={map_index}&deserialize=true",
        )
        assert status in (200, 404), f"the return value of {task_id}[{map_index}]: {status} {body}"
        return body.get("value") if status == 200 else None

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The attempt's log through the REST log endpoint, one line per entry:
        ``timestamp [level] logger: event key=value...`` (the entries are structured in Airflow 3)."""
        path = f"{self._ti_path(dag_id, run_id, task_id)}/logs/{try_number}"
        query = {"full_content": "true"}
        if map_index != -1:
            query["map_index"] = str(map_index)
        status, body = self.call("GET", f"{path}?{urllib.parse.urlencode(query)}")
        assert status == 200, f"log of {task_id}[{map_index}] try {try_number}: {status} {body}"
        return "\n".join(_log_line(entry) for entry in body.get("content", []))

    def task_pid(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> int | None:
        """The TI's ``pid``: the *task process* (forked by the Task SDK supervisor, a LocalExecutor
        worker; see the module docstring), not the supervisor. None before the attempt started."""
        ti = self.task_instance(dag_id, run_id, task_id, map_index)
        return ti["pid"] if ti else None

    def kill_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        sig: int = signal.SIGKILL,
        *,
        worker: bool = False,
    ) -> list[int]:
        """Kill the running attempt of a TI, as a worker dying mid-task would: ``sig`` to the task
        process's group (the task and whatever it started; its supervisor then reports the attempt
        failed at once and the retry runs). ``worker=True`` also kills the supervisor, so only the
        scheduler's heartbeat timeout notices. The pids signalled."""
        ti = self.task_instance(dag_id, run_id, task_id, map_index)
        label = f"{task_id}[{map_index}]"
        assert ti and ti["state"] == "running" and ti["pid"], f"{label} is not running: {ti and ti['state']}"
        pid = ti["pid"]
        try:
            task = psutil.Process(pid)
            self._check_task_process(task, ti)
            supervisor = task.parent()
        except psutil.NoSuchProcess:
            raise AssertionError(f"{label}'s task process {pid} is gone (the attempt just ended?)") from None
        killed = [pid]
        if worker and supervisor is not None:
            # The supervisor first, so it cannot report its child's death in between.
            with contextlib.suppress(psutil.NoSuchProcess):
                supervisor.send_signal(sig)
                killed.append(supervisor.pid)
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:  # before 3.3 the task process stayed in its supervisor's group
                os.kill(pid, sig)
        return killed

    def _check_task_process(self, task: psutil.Process, ti: dict) -> None:
        """Refuse to signal a pid that is not this TI's task process (pid reuse, another machine)."""
        title = " ".join(task.cmdline())
        parent = task.parent()
        parent_title = " ".join(parent.cmdline()) if parent else ""
        # The task process names its TI once started; before that it still has its worker's title.
        assert ti["id"] in title or "LocalExecutor" in title or "LocalExecutor" in parent_title, (
            f"pid {task.pid} ({title!r}, parent {parent_title!r}) is not the task process of {ti['task_id']}"
        )

    # -- diagnostics --------------------------------------------------------------------------------
    def describe_run(self, dag_id: str, run_id: str, log_tail: int = 2500) -> str:
        """The run's TIs by state, with the log tail of each failed or retried one: for assertion messages."""
        try:
            tis = self.task_instances(dag_id, run_id)
        except (AssertionError, OSError) as exc:
            return f"(could not list the TIs: {exc})"
        lines = [
            f"  {task_id}[{map_index}]: {ti['state']} (try {ti['try_number']})"
            for (task_id, map_index), ti in sorted(tis.items())
        ]
        for (task_id, map_index), ti in sorted(tis.items()):
            if ti["state"] in ("failed", "up_for_retry", "upstream_failed") or ti["try_number"] > 1:
                for attempt in range(1, ti["try_number"] + 1):
                    try:
                        log = self.task_log(dag_id, run_id, task_id, attempt, map_index)
                    except (AssertionError, OSError) as exc:
                        log = f"(no log: {exc})"
                    lines.append(f"--- {task_id}[{map_index}] try {attempt} ({ti['state']}):\n{log[-log_tail:]}")
        return "\n".join(lines)


#: Keys of a structured log entry that every line of an attempt repeats (left out of task_log's lines).
_LOG_CONTEXT = frozenset(
    [
        "timestamp",
        "level",
        "logger",
        "event",
        "dag_id",
        "run_id",
        "task_id",
        "map_index",
        "try_number",
        "ti_id",
        "filename",
        "lineno",
    ]
)


def _log_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    extra = " ".join(f"{key}={value}" for key, value in entry.items() if key not in _LOG_CONTEXT)
    head = " ".join(
        part
        for part in (
            entry.get("timestamp") or "",
            f"[{entry['level']}]" if entry.get("level") else "",
            f"{entry['logger']}:" if entry.get("logger") else "",
        )
        if part
    )
    return " ".join(part for part in (head, str(entry.get("event", "")), extra) if part)


# -- the cluster ------------------------------------------------------------------------------------
class AirflowCluster(AirflowApi):
    """``./airflow.sh api-server|scheduler|triggerer|dag-processor``, each its own process in its own
    session, output in ``<log_dir>/<component>.log`` (appended to across restarts).

    ``env`` is the whole environment of those processes (e.g. ``{**os.environ}`` with the scratch
    ``VARAI_AIRFLOW_HOME`` and sandbox ports): :data:`TUNING` fills in what it does not set; the API
    port, base URL, auth and log-server ports are always the cluster's own.
    """

    def __init__(
        self,
        env: dict[str, str],
        api_port: int,
        log_dir: Path,
        users: dict[str, str] | None = None,
        executor: str = PROJECT_EXECUTOR,
    ):
        super().__init__(f"http://127.0.0.1:{api_port}")
        #: SimpleAuthManager users beside admin: ``{name: role}`` (viewer, user, op, admin).
        self.users = {"admin": "admin", **(users or {})}
        self.api_port = api_port
        self.log_dir = Path(log_dir)
        self.passwords_file = self.log_dir / "simple_auth_manager_passwords.json"
        self.procs: dict[str, subprocess.Popen] = {}
        #: Session ids of every component process ever started: what stop() makes sure is gone.
        self.sessions: dict[int, str] = {}
        worker_log_port = free_port(exclude={api_port})
        trigger_log_port = free_port(exclude={api_port, worker_log_port})
        env = {**TUNING, **env}
        env.pop("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", None)  # derived from the base URL below
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": executor,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(api_port),
                # Workers (the Task SDK's execution API client) and the triggerer reach this API server.
                "AIRFLOW__API__BASE_URL": self.base_url,
                # The REST API's users, as `airflow standalone` has them: SimpleAuthManager, one admin,
                # its password in a file of ours (the api-server keeps passwords already in it).
                "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, r in self.users.items()),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                # One signing key for every process: the scheduler signs the workloads' execution API
                # tokens that the api-server checks (airflow.cfg has one too; this one is ours alone).
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                # The scheduler (for its workers) and the triggerer serve their logs to the api-server;
                # ports of our own rather than 8793/8794, which another Airflow on this machine may hold.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env = env
        self.passwords = {name: secrets.token_urlsafe(16) for name in self.users}
        self.password = self.passwords["admin"]

    def as_user(self, name: str) -> AirflowApi:
        """The REST API as another of the cluster's users (its own JWT)."""
        return AirflowApi(self.base_url, login(self.base_url, self.passwords[name], username=name))

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> None:
        """Start the four components and wait until all report healthy, then log in as admin."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(json.dumps(self.passwords) + "\n")
        self.passwords_file.chmod(0o600)
        since = time.time()
        try:
            for component in COMPONENTS:
                self._spawn(component)
            wait_until_healthy(
                self.base_url,
                timeout=timeout,
                newer_than=since,
                check=lambda: self._check_alive(COMPONENTS),
                describe=lambda: self.describe_logs(COMPONENTS),
                what="the Airflow cluster",
            )
            self.token = login(self.base_url, admin_password(self.passwords_file))
            # The api-server builds the execution API on its first request (~5 s): not in a test's first task.
            warm_execution_api(self.base_url)
        except BaseException:
            self.stop(check=False)
            raise

    def stop(self, grace: float = 15, *, check: bool = True) -> None:
        """Stop every component (SIGTERM to its group, SIGKILL after ``grace`` seconds) and make sure
        none of their processes is left, LocalExecutor workers and task processes included."""
        for component in list(self.procs):
            self.stop_component(component, grace)
        leftovers = self._kill_leftovers()
        if check:
            assert not leftovers, f"processes of the cluster outlived its stop and were killed: {leftovers}"

    def start_component(self, component: str, wait: bool = True, timeout: float = 120) -> None:
        """Start ``component`` (again) and, with ``wait``, until it reports healthy with a fresh heartbeat."""
        assert component in COMPONENTS, component
        assert component not in self.procs or self.procs[component].poll() is not None, f"{component} is running"
        since = time.time()
        self._spawn(component)
        if wait:
            self.wait_healthy(component, newer_than=since, timeout=timeout)

    def stop_component(self, component: str, grace: float = 15) -> int | None:
        """SIGTERM to the component's process group, up to ``grace`` s, then SIGKILL to the group and
        to whatever else of its session is left (task processes have their own groups). Its exit code."""
        proc = self.procs.pop(component, None)
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # The group's stragglers: SIGTERM'd LocalExecutor workers still finishing, the log server...
        _wait_gone(session_processes({proc.pid}), grace)
        stragglers = _kill_session(proc.pid)
        killed = f"; SIGKILLed what was left: {stragglers}" if stragglers else ""
        self._log_marker(component, f"stopped (exit code {proc.returncode}){killed}")
        return proc.returncode

    def restart(self, component: str, grace: float = 15, timeout: float = 120) -> None:
        """Stop ``component`` (as :meth:`stop_component`), start it again and wait until it is healthy.
        A restarted scheduler takes its LocalExecutor workers (and the tasks they run) with it."""
        self.stop_component(component, grace)
        self.start_component(component, timeout=timeout)

    def kill(self, component: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the component's process group without waiting for anything. SIGKILL (the
        machine is gone) also kills the rest of its session: the task processes of a scheduler's
        workers are in groups of their own. Start it again with :meth:`start_component`."""
        proc = self.procs[component]
        _signal_group(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait(timeout=10)
            _kill_session(proc.pid)
            self.procs.pop(component)
            self._log_marker(component, "killed (SIGKILL)")

    def wait_healthy(self, component: str, newer_than: float | None = None, timeout: float = 120) -> None:
        """Until ``component`` reports healthy (the api-server: until the health endpoint answers)."""
        parts = [HEALTH_PART[component]] if component in HEALTH_PART else ["metadatabase"]
        wait_until_healthy(
            self.base_url,
            parts,
            timeout=timeout,
            newer_than=newer_than,
            check=lambda: self._check_alive([component]),
            describe=lambda: self.describe_logs([component]),
            what=component,
        )

    def pid(self, component: str) -> int | None:
        proc = self.procs.get(component)
        return proc.pid if proc and proc.poll() is None else None

    def processes(self, component: str) -> list[psutil.Process]:
        """Every live process of the component: its own and its descendants' (same session)."""
        proc = self.procs.get(component)
        return session_processes({proc.pid}) if proc else []

    # -- logs ---------------------------------------------------------------------------------------
    def wait_parked(self, dag_id: str, run_id: str, task_id: str, timeout: float = 120) -> None:
        """Until a Human-in-the-loop task waits for its answer and the scheduler has taken the executor's
        event of the try that parked it. A person answers seconds later; a test answering sooner can
        beat that event, which Airflow 3.3 then applies to the resumed try and fails it (the answer
        is lost and the retry asks again)."""
        self.wait_for_task(dag_id, run_id, task_id, states=("awaiting_input",), timeout=timeout)
        parked = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}, map_index=-1"
        deadline = time.monotonic() + timeout
        while not any(
            line.startswith(parked, line.find("TaskInstance Finished")) and "state=awaiting_input" in line
            for line in self.log_file("scheduler").read_text(errors="replace").splitlines()
            if "TaskInstance Finished" in line
        ):
            assert time.monotonic() < deadline, f"the scheduler never saw {task_id} of {run_id} parked"
            time.sleep(0.2)

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def log_tail(self, component: str, chars: int = 3000) -> str:
        path = self.log_file(component)
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def describe_run(self, dag_id: str, run_id: str, log_tail: int = 2500) -> str:
        """As the API's, with what the scheduler said went wrong in the run: a TI failed from outside
        its task (an executor's state mismatch, a heartbeat timeout) has no task log line saying why."""
        path = self.log_file("scheduler")
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        said = [
            line[:600]
            for line in lines
            if run_id in line and any(w in line for w in ("ERROR", "WARNING", "error", "warning", "mismatch"))
        ]
        described = super().describe_run(dag_id, run_id, log_tail)
        return described + ("\n--- the scheduler on this run:\n" + "\n".join(said[-15:]) if said else "")

    def describe_logs(self, components: Iterable[str], chars: int = 3000) -> str:
        return "\n".join(f"--- {c} ({self.log_file(c)}):\n{self.log_tail(c, chars)}" for c in components)

    # -- internals ----------------------------------------------------------------------------------
    def _spawn(self, component: str) -> None:
        self._log_marker(component, "starting")
        with self.log_file(component).open("a") as out:
            proc = subprocess.Popen(
                [str(REPO_ROOT / "airflow.sh"), component],
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[component] = proc
        self.sessions[proc.pid] = component

    def _log_marker(self, component: str, what: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(component).open("a") as out:
            out.write(f"===== airflow_cluster: {component} {what} at {time.strftime('%H:%M:%S')} =====\n")

    def _check_alive(self, components: Iterable[str]) -> None:
        for component in components:
            proc = self.procs.get(component)
            assert proc is not None, f"{component} is not started"
            assert proc.poll() is None, (
                f"{component} exited with code {proc.returncode}:\n{self.describe_logs([component])}"
            )

    def _kill_leftovers(self) -> list[str]:
        """SIGKILL whatever is still alive in any session the cluster ever started; what it was."""
        described = [what for sid in self.sessions for what in _kill_session(sid)]
        still = session_processes(set(self.sessions))
        assert not still, f"unkillable processes of the cluster: {still}"
        return described


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def session_processes(sessions: set[int]) -> list[psutil.Process]:
    """Live (non-zombie) processes whose session is one of ``sessions``."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) in sessions and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return found


def local_executor_workers(sessions: set[int], timeout: float = 60) -> list[psutil.Process]:
    """The LocalExecutor workers in ``sessions``, once there are any (or none after ``timeout``). A
    scheduler forks them after importing what the tasks use (varai_deploy.executor), which on a loaded
    machine can be seconds after it reports healthy."""
    deadline = time.monotonic() + timeout
    while True:
        workers = [p for p in session_processes(sessions) if "LocalExecutor" in " ".join(_cmdline(p))]
        if workers or time.monotonic() > deadline:
            return workers
        time.sleep(0.5)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(processes: list[psutil.Process], timeout: float) -> None:
    """Until none of ``processes`` is alive (zombies count as gone: nobody may reap them), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)


def _kill_session(sid: int) -> list[str]:
    """SIGKILL every process left in session ``sid``, whatever its process group; what they were."""
    left = session_processes({sid})
    described = []
    for process in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            described.append(f"{process.pid} {' '.join(process.cmdline())[:120]!r}")
            process.kill()
    _wait_gone(left, 5)
    return described
