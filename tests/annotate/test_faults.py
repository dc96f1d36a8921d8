"""The named fault points (annotate/faults.py): a callback runs only inside its block."""

import pytest

from annotate.faults import fault_hooked, fault_point


def test_a_fault_point_calls_its_callback_with_the_context_only_while_hooked():
    calls = []
    fault_point("import.batch_written", rows=1)
    with fault_hooked("import.batch_written", lambda **context: calls.append(context)):
        fault_point("import.batch_written", rows=2)
        fault_point("artifact.file_writing", name="x", written=1)
    fault_point("import.batch_written", rows=3)
    assert calls == [{"rows": 2}]


def test_a_fault_point_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="no fault point"), fault_hooked("import.typo", print):
        pass
