"""The web UI's side of loadkit: routes, the Mail tab's rows, the start form's checks, the report.

`MailConsole` is made by `loadkit.webui.plugin` at init, on a master or a
local runner with a web UI only (see there for what it adds).
"""

from __future__ import annotations

import html
import io
import json
import logging
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import gevent
from gevent.lock import Semaphore
from locust.runners import MasterRunner

from loadkit.hdr import percentile_key
from loadkit.options import run_option_problem
from loadkit.results import E2E_FILE, REPORT_FILE, RUN_FILE
from loadkit.thresholds import ThresholdError
from loadkit.webui._console import TABLE_COLUMNS, build_state, json_for_html, table_rows
from loadkit.webui._live import LiveRun
from loadkit.webui._page import PAGE
from loadkit.webui._sink import SinkControlError, SinkCounters
from loadkit.webui._swarm import host_problem, parse_checks
from loadkit.webui._workers import WorkerShares

log = logging.getLogger(__name__)

TAB_KEY = "mail"
PREFIX = "/loadkit"
REPORT_TIMEOUT = 600.0  # seconds a report build may take
# After Stop the folder is complete once run.json is written: a master waits for its
# workers' final reports and the end-to-end drain first. The report waits that long at most.
FOLDER_WAIT = 300.0
STATE_FRESH_FOR = 1.0  # seconds a computed state is served again
FINAL_WRITE_WAIT = 15.0  # seconds a stopped run's stats request waits for the folder's last lines, beyond the stop timeout
SINK_COUNTERS = ("sessions", "messages", "recipients", "bytes", "replies")  # of the sink's /stats, shown
LINKS = (
    "<div id=\"loadkit-links\" style=\"position:fixed;right:12px;bottom:8px;z-index:2000;font:13px system-ui;"
    "background:#fff;border:1px solid #ccc;border-radius:4px;padding:4px 8px\">loadkit: "
    "<a href=\"./loadkit/mail\" target=\"_blank\">Mail console</a> · "
    "<a href=\"./loadkit/report\" target=\"_blank\">Report</a> · "
    "<a href=\"./loadkit/results.zip\">Results (zip)</a></div>"
)


class MailConsole:
    def __init__(self, environment, results, web_ui):
        self.environment = environment
        self.results = results
        self.web_ui = web_ui
        self.live = LiveRun(pause=lambda: gevent.sleep(0))
        self.sink = SinkCounters()
        self.workers = WorkerShares() if isinstance(environment.runner, MasterRunner) else None
        self.last_run = None
        self.reported: set[Path] = set()  # folders whose report was built after their run ended
        self._building = Semaphore()
        self._computing = Semaphore()
        self._state: dict | None = None
        self._state_at = float("-inf")

    # -- wiring ----------------------------------------------------------------------------------

    def install(self) -> "MailConsole":
        web_ui, events = self.web_ui, self.environment.events
        web_ui.template_args["extended_tabs"] = [{"title": "Mail", "key": TAB_KEY}]
        web_ui.template_args["extended_tables"] = [
            {"key": TAB_KEY, "structure": [{"key": key, "title": title} for key, title in TABLE_COLUMNS]}]
        web_ui.template_args["extended_csv_files"] = [
            {"href": f".{PREFIX}/mail", "title": "Mail console: phases over time, replies, sink, workers"},
            {"href": f".{PREFIX}/report", "title": f"Report of the run ({REPORT_FILE})"},
            {"href": f".{PREFIX}/results.zip", "title": "Results folder (zip)"},
        ]
        self._add_routes()
        if self.workers is not None:
            events.worker_report.add_listener(self.workers.on_worker_report)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        return self

    def _add_routes(self) -> None:
        from flask import Blueprint, Response, request

        web_ui = self.web_ui
        app = web_ui.app
        base = (getattr(self.environment.parsed_options, "web_base_path", None) or "").rstrip("/")
        blueprint = Blueprint("loadkit_webui", __name__, url_prefix=f"{base}{PREFIX}")
        guarded = web_ui.auth_required_if_enabled

        @blueprint.route("/mail")
        @guarded
        def mail_page():
            return Response(PAGE, mimetype="text/html")

        @blueprint.route("/mail.json")
        @guarded
        def mail_json():
            try:
                state = self.state()
            except Exception as error:  # the page says it in one line; Locust's UI goes on
                log.warning("loadkit: the Mail tab's numbers: %s", error, exc_info=True)
                return Response(f"the Mail tab's numbers: {error}\n", status=500, mimetype="text/plain")
            return Response(json_for_html(state), mimetype="application/json", headers={"Cache-Control": "no-store"})

        @blueprint.route("/report")
        @guarded
        def report():
            path, problem = self.report_now()
            if path is None:
                return Response(html.escape(problem) + "\n", status=404, mimetype="text/plain")
            return Response(path.read_bytes(), mimetype="text/html")

        @blueprint.route("/results.zip")
        @guarded
        def results_zip():
            folder = self.folder()
            if folder is None or not folder.is_dir():
                return Response("no results folder yet: start a test first\n", status=404, mimetype="text/plain")
            return Response(zip_folder(folder), mimetype="application/zip",
                            headers={"Content-Disposition": f'attachment; filename="{folder.name}.zip"'})

        app.register_blueprint(blueprint)

        @app.before_request
        def refuse_unusable_swarm():
            if request.method != "POST" or request.path != f"{base}/swarm":
                return None
            return guarded(self.check_swarm)()

        @app.after_request
        def add_mail_rows(response):
            if request.path != f"{base}/stats/requests" or not response.is_json:
                return response
            data = response.get_json(silent=True)
            if isinstance(data, dict):
                rows = self.rows_or_problem()
                data["extended_stats"] = [{"key": TAB_KEY, "data": rows}]
                response.set_data(json_for_html(data))
            return response

        @app.after_request
        def add_links(response):
            if request.path not in (f"{base}/", base or "/") or response.mimetype != "text/html" \
                    or response.status_code != 200 or response.direct_passthrough:
                return response
            page = response.get_data(as_text=True)
            if "</body>" in page and "loadkit-links" not in page:
                response.set_data(page.replace("</body>", LINKS + "</body>", 1))
            return response

    # -- the start form ----------------------------------------------------------------------------

    def check_swarm(self):
        """None to let Locust start the swarm; Locust's JSON error shape to refuse it, with the reason."""
        from flask import jsonify, request

        environment = self.environment
        form = request.form
        if "host" in form:
            host = form["host"].replace("<", "").replace(">", "")  # what Locust itself keeps of it
            user_classes = environment.user_classes or list((environment.available_user_classes or {}).values())
            problem = host_problem(host, user_classes)
            if problem:
                log.warning("loadkit: swarm refused: %s", problem)
                return jsonify({"success": False, "message": f"loadkit: {problem}", "host": environment.host})
        if "check" in form:
            try:
                checks = parse_checks(form.getlist("check"))
            except ThresholdError as error:
                return jsonify({"success": False, "message": f"loadkit: --check: {error}", "host": environment.host})
            controller = self._controller()
            if controller is not None:
                controller.checks = checks
        problem = run_option_problem(form)
        if problem:
            return jsonify({"success": False, "message": f"loadkit: {problem}", "host": environment.host})
        if "sink_control" in form:
            try:
                self.sink.point_at(form["sink_control"])
            except SinkControlError as error:
                return jsonify({"success": False, "message": f"loadkit: {error}", "host": environment.host})
        return None

    # -- the run -----------------------------------------------------------------------------------

    def _controller(self):
        controller = self.results.controller
        return controller if controller is not None and controller.environment is self.environment else None

    def folder(self) -> Path | None:
        controller = self._controller()
        return controller.folder if controller is not None else None

    def on_test_start(self, **_kwargs) -> None:
        if self.workers is not None:
            self.workers.clear()

    def on_test_stop(self, **_kwargs) -> None:
        folder = self.folder()
        if folder is not None:
            gevent.spawn(self._report_when_written, folder)

    def _report_when_written(self, folder: Path) -> None:
        deadline = time.monotonic() + FOLDER_WAIT

        def written() -> bool:  # a newer test closed this folder before it began
            return (folder / RUN_FILE).exists() and (
                self.results.folder(self.environment) != folder or self.results.settled(self.environment))

        while not written() and time.monotonic() < deadline:
            gevent.sleep(0.2)
        path, problem = self.build_report(folder)
        if path is not None:
            self.reported.add(folder)
            print(f"loadkit: report in {path}", flush=True)
        else:
            log.warning("loadkit: no report: %s", problem)

    def build_report(self, folder: Path) -> tuple[Path | None, str]:
        """Build report.html in `folder` (in a process of its own: the UI and the workers go on); (path, problem)."""
        with self._building:
            try:
                done = subprocess.run([sys.executable, "-m", "loadkit", "report", str(folder)], capture_output=True,
                                      text=True, timeout=REPORT_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                return None, f"the report of {folder} took more than {REPORT_TIMEOUT:.0f} s"
            path = folder / REPORT_FILE
            if done.returncode != 0 or not path.exists():
                lines = (done.stderr or done.stdout or "").strip().splitlines()
                return None, lines[-1] if lines else f"loadkit report exited {done.returncode}"
            return path, ""

    def report_now(self) -> tuple[Path | None, str]:
        """The report of the current or last run: the one built at its end, else one built now."""
        folder = self.folder()
        if folder is None:
            return None, "no run yet: start a test first"
        path = folder / REPORT_FILE
        if folder in self.reported and path.exists():
            return path, ""
        return self.build_report(folder)

    def rows_or_problem(self) -> list[dict]:
        """The tab's rows; a problem reading them is one row, never a broken /stats/requests."""
        try:
            if self._stopped_but_not_written():
                return table_rows(self._final_state())
            return table_rows(self.state())
        except Exception as error:  # Locust's own numbers must still reach the UI
            log.warning("loadkit: the Mail tab's numbers: %s", error, exc_info=True)
            return [{"section": "ALERT", "item": "the Mail tab's numbers", "detail": str(error)}]

    def _stopped_but_not_written(self) -> bool:
        runner = self.environment.runner
        return (runner is not None and runner.state in ("stopping", "stopped") and self._controller() is not None
                and not self.results.settled(self.environment))

    def _final_state(self) -> dict:
        """Locust's page stops asking for its stats once the run is stopping or stopped. The state
        turns to stopped before the test_stop listeners write the last second (a master's, after its
        workers' final reports) and before the end-to-end drain writes e2e.json: wait for the whole
        folder, then read it, so the tab ends on the final counts. A request made as the run starts
        stopping waits for the users too (the stop timeout), and for the drain (its timeout)."""
        from loadkit.e2e import plugin as e2e_plugin

        options = self.environment.parsed_options
        drain = (getattr(options, "e2e_drain_timeout", None) or 0.0) if e2e_plugin.traced(self.environment) else 0.0
        deadline = time.monotonic() + (self.environment.stop_timeout or 0.0) + drain + FINAL_WRITE_WAIT
        while self._stopped_but_not_written() and time.monotonic() < deadline:
            gevent.sleep(0.05)
        with self._computing:
            self._state, self._state_at = self._compute_state(), time.monotonic()
            return self._state

    def state(self) -> dict:
        """The Mail tab's state, computed at most once a STATE_FRESH_FOR (the tab and the page both poll)."""
        with self._computing:  # one at a time: reading the folder yields to the loop now and then
            now = time.monotonic()
            if self._state is None or now - self._state_at >= STATE_FRESH_FOR:
                self._state, self._state_at = self._compute_state(), now
            return self._state

    def _compute_state(self) -> dict:
        controller = self._controller()
        run = controller.run if controller is not None else None
        if run is not None:
            self.last_run = run
        folder = controller.folder if controller is not None else None
        self.live.follow(folder)
        open_intervals = list(run.store.open.values()) if run is not None else []
        totals, timeline = self.live.snapshot(open_intervals)
        shown_run = run if run is not None else (
            self.last_run if self.last_run is not None and folder is not None and self.last_run.folder == folder else None)
        runner = self.environment.runner
        return build_state(
            totals, timeline, run=shown_run,
            workers=self.workers.rows() if self.workers is not None else None,
            sink=self._sink_state(), e2e=self._e2e_state(folder),
            checks=controller.checks if controller is not None else (),
            runner_state=runner.state if runner is not None else "",
        )

    def _sink_state(self) -> dict | None:
        address = getattr(self.environment.parsed_options, "sink_control", "") or ""
        try:
            self.sink.point_at(address)
        except SinkControlError as error:
            return {"stats": None, "error": str(error)}
        stats = self.sink.read()
        if self.sink.url is None:
            return None
        shown = None if stats is None else {key: stats.get(key) for key in SINK_COUNTERS}
        return {"stats": shown, "error": self.sink.error}

    def _e2e_state(self, folder: Path | None) -> dict | None:
        from loadkit.e2e import plugin as e2e_plugin

        if folder is not None and (folder / E2E_FILE).exists():
            try:
                summary = json.loads((folder / E2E_FILE).read_text())
            except (OSError, ValueError):
                return None
            latency = summary.get("latency_ms") or {}
            p99 = latency.get(percentile_key(99.0))
            return {name: summary.get(name) for name in ("accepted", "delivered", "lost", "duplicated")} | {
                "p99_us": None if p99 is None else int(round(p99 * 1000)),
                "max_us": None if latency.get("max") is None else int(round(latency["max"] * 1000))}
        if e2e_plugin.traced(self.environment):
            return {"accepted": e2e_plugin.accepted.count,
                    "note": "delivered, lost and duplicated are counted at the end, once the queue is drained"}
        return None


def zip_folder(folder: Path) -> bytes:
    """Every file of `folder` (its name as the top directory), deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.relative_to(folder)}")
    return buffer.getvalue()
