"""`spotme-hub import FILE`: one-shot bulk import of an export file, with progress and summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from ...contract import CommandTools


def register(cli: click.Group, tools: CommandTools) -> None:
    @cli.command("import")
    @click.argument(
        "files",
        nargs=-1,
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
    )
    @tools.config_option
    @click.option(
        "--device", "device_id", help="Device the file belongs to (default: the only csv device)."
    )
    @click.option("--preset", type=click.Choice(["auto", "zkteco_attlog", "biotime", "generic"]),
                  help="The export's layout (default: the device's, else recognised).")  # fmt: skip
    @click.option("--encoding", help="Text encoding (default: auto — BOM, UTF-8, GBK, cp1252).")
    @click.option("--delimiter", help="Field separator (default: sniffed; '\\t' for tab).")
    @click.option("--dayfirst", is_flag=True, help="03/02/2025 is 3 February.")
    @click.option("--monthfirst", is_flag=True, help="03/02/2025 is 2 March.")
    @click.option("--date-format", help="strptime format of the time value, e.g. '%d/%m/%Y %H:%M'.")
    @click.option("--timezone", help="Zone of the file's times (default: the device's).")
    @click.option(
        "--columns", help="The generic preset's columns, FIELD=COLUMN pairs separated by commas "
        "(user_id=No. Pekerja,time=Masa,punch=Status) or a JSON object as `columns:` takes; "
        "implies --preset generic.",
    )  # fmt: skip
    @click.option("--date-column", help="A separate date column, joined to the time column.")
    @click.option(
        "--sheet", help="Workbook sheet, by name or number from 0 (default: every sheet with a "
        "header).",
    )  # fmt: skip
    @click.option("--dry-run", is_flag=True, help="Read and normalise, commit nothing.")
    @click.option("--force", is_flag=True, help="Import even if the same content was imported.")
    @click.option(
        "--writer", type=click.Choice(["auto", "thread", "process"]), default="auto",
        show_default=True,
        help="Who commits the chunks: a worker process uses both cores (and ~120 MB more); "
        "auto picks it for files of 4 MiB and more.",
    )  # fmt: skip
    def import_cmd(
        files: tuple[Path, ...], config_path: Path, device_id: str | None, preset: str | None,
        encoding: str | None, delimiter: str | None, dayfirst: bool, monthfirst: bool,
        date_format: str | None, timezone: str | None, columns: str | None,
        date_column: str | None, sheet: str | None, dry_run: bool, force: bool, writer: str,
    ) -> None:  # fmt: skip
        """Import CSV/Excel exports (attlog.dat, BioTime, generic columns): idempotent, fast."""
        from pydantic import ValidationError
        from rich.console import Console

        from ...normalize import Normalizer
        from .importer import import_file, options_for, resolve_device
        from .reader import FileRefused

        console = Console()
        cfg = tools.load_config(config_path)
        try:
            device = resolve_device(cfg, device_id)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        if dayfirst and monthfirst:
            raise click.UsageError("--dayfirst and --monthfirst contradict each other: give one")
        try:
            opts = options_for(
                device, preset=preset or ("generic" if columns else None), encoding=encoding,
                delimiter=delimiter, dayfirst=True if dayfirst else False if monthfirst else None,
                date_format=date_format, timezone=timezone, columns=_columns(columns),
                date_column=date_column,
                sheet=int(sheet) if sheet is not None and sheet.isdigit() else sheet,
            )  # fmt: skip
        except ValidationError as exc:
            raise click.UsageError(_option_errors(exc)) from None
        store = tools.open_store(cfg)
        normalizer = Normalizer(cfg)
        failed = 0
        try:
            for path in files:
                try:
                    summary = _one(
                        console, cfg, store, path, device, opts, dry_run, force, normalizer,
                        import_file, writer,
                    )  # fmt: skip
                except FileRefused as exc:
                    console.print(f"[red]refused[/red] {path.name}: {exc}", highlight=False)
                    failed += 1
                    continue
                _report(console, summary)
        finally:
            store.close()
        if failed:
            raise SystemExit(1)


def _columns(text: str | None) -> Any:
    """--columns as `columns:` takes it: a JSON object, or FIELD=COLUMN pairs."""
    if text is None:
        return None
    if text.lstrip().startswith("{"):
        import json

        try:
            return json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"not a JSON object: {exc}", param_hint="--columns") from None
    pairs = {}
    for part in text.split(","):
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(
                f"{part.strip()!r} is not FIELD=COLUMN (e.g. user_id=No. Pekerja)",
                param_hint="--columns",
            )
        pairs[field.strip()] = column.strip()
    return pairs


def _option_errors(exc: Any) -> str:
    """The options' validation errors, one line, each named by its command-line option."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = "--" + loc[0].replace("_", "-") if loc else "the import's options"
        if len(loc) > 1:
            where += " " + ".".join(loc[1:])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and loc[:1] == ["columns"]:
            from ...config import unknown_key
            from ...normalize.mapping import Mapping

            where, msg = (
                "--columns",
                f"{loc[-1]}: " + unknown_key(loc[-1], list(Mapping.model_fields)),
            )
        out.append(f"{where}: {msg}")
    return "; ".join(out)


def _one(console: Console, cfg: Any, store: Any, path: Path, device: Any, opts: Any, dry_run: bool,
         force: bool, normalizer: Any, import_file: Any, writer: str) -> Any:  # fmt: skip
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console, transient=False,
    ) as progress:  # fmt: skip
        task = progress.add_task(path.name, total=None, rate="")
        started = progress.get_time()

        def tick(rows: int, _total: int) -> None:
            elapsed = max(progress.get_time() - started, 1e-6)
            progress.update(task, completed=rows, rate=f"{rows / elapsed:,.0f} rows/s")

        summary = import_file(
            cfg, store, path, device, opts, dry_run=dry_run, force=force, progress=tick,
            normalizer=normalizer, writer=writer,
        )  # fmt: skip
        progress.update(task, total=summary.rows_read or 1, completed=summary.rows_read)
    return summary


def _report(console: Console, s: Any) -> None:
    if s.already_imported:
        console.print(f"[yellow]{s.line()}[/yellow]", highlight=False)
        return
    rate = s.rows_read / s.seconds if s.seconds else 0
    sheets = f" ({len(s.sheets)} sheets: {', '.join(s.sheets)})" if len(s.sheets) > 1 else ""
    console.print(
        f"{s.file}{sheets}: preset {s.preset}, {s.reader}, times as {s.time_format!r}"
        + ("" if s.dry_run else f", committed by a worker {s.writer}"),
        highlight=False,
    )
    console.print(
        f"  rows read {s.rows_read:,} · {'would import' if s.dry_run else 'imported'} "
        f"{s.imported:,} · duplicates {s.duplicates:,} · quarantined {s.quarantined:,} · "
        f"skipped {s.skipped:,} · {s.seconds:.1f} s ({rate:,.0f} rows/s)",
        highlight=False,
    )
    for line, reason in s.skips:
        console.print(f"  line {line}: skipped, {reason}", highlight=False)
    if s.skipped > len(s.skips):
        more = "blank" if not s.skips else "blank, or more of the kinds above"
        console.print(
            f"  … {s.skipped - len(s.skips):,} more skipped line(s) ({more})", highlight=False
        )
    for line, reason in s.problems:
        console.print(f"  [red]line {line}[/red]: {reason}", highlight=False)
    if s.quarantined > len(s.problems):
        console.print("  … see `spotme-hub quarantine list`", highlight=False)
