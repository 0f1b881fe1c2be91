"""Models show themselves briefly: one-line reprs (terminal Out[]) and HTML tables (Jupyter)."""

from __future__ import annotations

from datetime import UTC, datetime

from sprites_jupyter.client import Checkpoint, ExecResult, Service, ServiceState, SpriteInfo

TAKEN = datetime(2026, 6, 2, 17, 11, 14, 555000, tzinfo=UTC)


def test_checkpoint_repr_is_one_short_line_and_html_a_table():
    checkpoint = Checkpoint("v3", TAKEN, "baseline: " + "x" * 100, source_id="v2",
                            history=("v1", "v2"))
    shown = repr(checkpoint)
    assert shown.startswith("Checkpoint(v3, 2026-06-02 17:11:14 UTC, 'baseline: x")
    assert len(shown) < 100 and "…" in shown and "extra" not in shown
    table = checkpoint._repr_html_()
    assert table.startswith("<table>") and "v1 → v2 → v3" in table


def test_service_repr_shows_the_command_shell_quoted_and_its_status():
    service = Service("web", "python3", ("-c", "print('hi there')"),
                      state=ServiceState(status="running", pid=42))
    assert service.command == "python3 -c 'print('\"'\"'hi there'\"'\"')'"
    assert repr(service).startswith("Service('web', ")
    assert repr(service).endswith(", running)")
    assert "<td style='text-align:left'>42</td>" in service._repr_html_()


def test_sprite_and_exec_result_reprs_are_short():
    assert repr(SpriteInfo("demo", status="warm", url="https://demo.sprites.app")) == (
        "SpriteInfo('demo', warm, https://demo.sprites.app)")
    result = ExecResult("a\nb\n", "", 0, 0.03960299599998507)
    assert repr(result) == ("ExecResult(exit_code=0, duration=0.04 s, stdout='a\\nb\\n' "
                            "(2 lines), stderr='')")
