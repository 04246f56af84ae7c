"""One deferral in the shape that makes Airflow 3.3 fail a resumed task (apache/airflow#72716): the
worker reports the deferral's end late (a child it started holds its output for ``hold`` seconds),
the trigger fires at once, and the resumed run is still going when that late report comes in."""

from __future__ import annotations

from airflow.sdk import BaseOperator, dag


class DeferWhileAChildHoldsTheOutput(BaseOperator):
    def __init__(self, *, hold: float, resumed_for: float, **kwargs):
        super().__init__(**kwargs)
        self.hold, self.resumed_for = hold, resumed_for

    def execute(self, context):
        import subprocess
        import sys
        from datetime import UTC, datetime

        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        # Inherits the task's stdout and stderr: the supervisor reads them until they close.
        subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({self.hold})"])
        self.defer(trigger=DateTimeTrigger(moment=datetime.now(UTC)), method_name="resumed")

    def resumed(self, context, event=None):
        import time

        time.sleep(self.resumed_for)
        return "resumed"


@dag(schedule=None, is_paused_upon_creation=False, catchup=False)
def resumed_deferral():
    DeferWhileAChildHoldsTheOutput(task_id="defer", hold=8, resumed_for=10, retries=0)


resumed_deferral()
