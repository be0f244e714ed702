"""Options of `kind: csv` devices (also what `spotme-hub import` reads from a csv device)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...contract import Options
from ...normalize.mapping import Mapping

PresetName = Literal["auto", "zkteco_attlog", "biotime", "generic"]


class CsvOptions(Options):
    watch: str | None = Field(
        None, description="Folder: new files are imported, then moved to processed/ or failed/."
    )
    path: str | None = Field(None, description="Glob of files to import once each (by content).")
    preset: PresetName = Field(
        "auto", description="auto: *_attlog.dat → zkteco_attlog, `columns` → generic, else biotime."
    )
    columns: Mapping | None = Field(
        None, description="generic preset: the shared Mapping; paths are column names."
    )
    date_column: str | None = Field(
        None, description="A separate date column, joined with the mapping's time column."
    )
    encoding: str = Field("auto", description="auto = BOM, then UTF-8, then GBK, then cp1252.")
    delimiter: str | None = Field(None, description="Field separator (default: sniffed).")
    dayfirst: bool | None = Field(None, description="03/02/2025 is 3 February (true) or 2 March.")
    date_format: str | None = Field(
        None, description="strptime format of the (joined) time value, e.g. '%d/%m/%Y %I:%M %p'."
    )
    timezone: str | None = Field(None, description="Zone of the file's times (default: device).")
    punch: dict[str, str] | None = Field(None, description="Punch value map, e.g. {Masuk: in}.")
    device_column: str | None = Field(
        None, description="Column naming the device of each row (device id or a `devices` key)."
    )
    devices: dict[str, str] = Field(
        default_factory=dict, description="device_column value → configured device id."
    )
    sheet: str | int | None = Field(
        None, description="Workbook sheet (name or index); default: every sheet with a header."
    )
    stream_sheet_mb: float = Field(
        32, gt=0, le=4096,
        description="An .xlsx sheet whose XML is larger than this is streamed (openpyxl: flat "
        "memory, slower) instead of loaded whole (python-calamine, ~0.8 KB a row); lower it on a "
        "small machine.",
    )  # fmt: skip
    chunk_rows: int = Field(
        50_000, ge=100, le=1_000_000,
        description="Rows read and committed at a time (default 50,000 for `spotme-hub import`, 5,000 for a watch folder).",
    )  # fmt: skip
    poll_every: float = Field(10.0, gt=0, description="Seconds between folder scans.")
    settle_s: float = Field(2.0, ge=0, description="Skip files modified more recently than this.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        from ...config import check_timezone

        return check_timezone(v)

    @field_validator("delimiter")
    @classmethod
    def _delim(cls, v: str | None) -> str | None:
        if v is not None:
            v = {"\\t": "\t", "tab": "\t"}.get(v, v)
            if len(v) != 1:
                raise ValueError("a delimiter is one character (use '\\t' for tab)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CsvOptions:
        if self.watch and self.path:
            raise ValueError("give watch (a folder) or path (a glob), not both")
        if self.preset == "generic" and self.columns is None:
            raise ValueError(
                "preset generic needs a `columns` mapping (--columns on the command line)"
            )
        if self.date_format and self.dayfirst is not None:
            raise ValueError("give dayfirst or date_format, not both")
        return self
