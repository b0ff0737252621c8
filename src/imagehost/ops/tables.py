from piccolo.columns import Text, Timestamptz, Varchar
from piccolo.table import Table


class OperationState(Table, tablename="operations_state"):
    """The last outcome of each operation (backup, check, restore): one row per kind, replaced each
    time. The statistics page reads it; nothing parses app.log for it, where a line can be forged by
    anything that ends up logged (an uploaded file's name)."""

    kind = Varchar(length=16, primary_key=True)
    at = Timestamptz()
    outcome = Varchar(length=16)  # ok, warnings, problems, failed
    detail = Text()
