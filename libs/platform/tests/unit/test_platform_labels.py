"""ISBT 128 bag labels (issue 17 item 3): a rendered label, read back by a barcode decoder
(zxing-cpp) from the PDF as printed (pypdfium2) and from the PNG, says exactly what
`barcode_texts` says it encodes; the DIN is printed with its flags and check character; a
product code appears only when the site loaded it; what no label may carry is refused."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from v2v_platform.cli import app as v2v
from v2v_platform.ids import InvalidIdentifier, issue_din
from v2v_platform.labels import (
    InvalidLabelData,
    Label,
    ProductCodes,
    UnknownProductCode,
    barcode_texts,
    label_pdf,
    label_png,
    load_product_codes,
)
from v2v_testkit.labels import pdf_text, read_barcodes, read_pdf_barcodes

DIN = issue_din("G1234", 25, 17)  # check character 5
COI = "CHG123425000017"
EXPIRES = datetime(2026, 3, 1, 23, 59, tzinfo=timezone(timedelta(hours=1)))
CODES = ProductCodes({"S1234": "CAR-T cells, autologous, cryopreserved"}, "test")
ARTIFACTS = Path(__file__).resolve().parents[4] / "test-artifacts" / "labels"


def full_label() -> Label:
    code, description = CODES.describe("S1234")
    lines = ("Collected at HOSP-A", "FIN G1234")
    return Label(DIN, COI, code, EXPIRES, description, lines)


def test_every_barcode_of_the_printed_pdf_reads_back_exactly_what_the_label_encodes() -> None:
    label = full_label()

    assert barcode_texts(label) == {
        "din": "=G12342500001700",
        "product": "=<S1234000",
        "expiry": "&>0260602359",
        "datamatrix": "=+03000=G12342500001700=<S1234000&>0260602359",
    }
    assert read_pdf_barcodes(label_pdf(label)) == barcode_texts(label)


def test_the_png_carries_the_same_barcodes_and_is_saved_for_the_closing_note() -> None:
    label = full_label()
    png = label_png(label)

    image = Image.open(io.BytesIO(png))
    assert image.size == (1181, 1181) and image.format == "PNG"
    assert read_barcodes(image) == barcode_texts(label)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "label.png").write_bytes(png)


def test_the_din_is_printed_with_its_flags_and_check_character_and_the_coi() -> None:
    label = full_label()
    text = pdf_text(label_pdf(label))

    assert DIN.check_character == "5" and label.eye_readable_din == "G1234 25 000017 00 5"
    assert "G1234 25 000017" in text and "00" in text and "5" in text
    assert COI in text and "S1234000" in text and "CAR-T cells" in text
    assert "2026-03-01 23:59" in text and "UTC+01:00" in text
    assert "=" not in text.replace("=+", "")  # data identifiers are bar-coded, not printed


def test_a_product_code_appears_only_when_the_site_configured_it() -> None:
    plain = Label(DIN, COI, expires_at=EXPIRES)

    assert "product" not in barcode_texts(plain)
    assert barcode_texts(plain)["datamatrix"] == "=+02000=G12342500001700&>0260602359"
    assert read_pdf_barcodes(label_pdf(plain)) == barcode_texts(plain)
    assert "Product code: not configured" in pdf_text(label_pdf(plain))
    with pytest.raises(UnknownProductCode, match="loaded no product description codes"):
        load_product_codes(None).describe("S1234")
    with pytest.raises(UnknownProductCode, match="not among the 1 product codes"):
        CODES.describe("S9999")
    assert CODES.describe("S1234A00") == ("S1234A00", "CAR-T cells, autologous, cryopreserved")


def test_only_the_din_and_its_datamatrix_when_nothing_else_is_configured() -> None:
    bare = Label(DIN)

    assert barcode_texts(bare) == {
        "din": "=G12342500001700",
        "datamatrix": "=+01000=G12342500001700",
    }
    assert read_pdf_barcodes(label_pdf(bare)) == barcode_texts(bare)


def test_site_product_codes_load_from_csv_or_json_and_bad_files_are_refused(
    tmp_path: Path,
) -> None:
    csv_file = tmp_path / "codes.csv"
    csv_file.write_text('code,description\nS1234,"CAR-T cells, autologous"\nS1235A00,Other\n')
    json_file = tmp_path / "codes.json"
    json_file.write_text('{"S1234": "CAR-T cells, autologous"}')

    assert load_product_codes(csv_file).describe("S1234") == ("S1234000", "CAR-T cells, autologous")
    assert load_product_codes(csv_file).describe("S1235A00")[1] == "Other"
    assert load_product_codes(json_file).describe("S1234")[0] == "S1234000"
    bad = {
        "no-header.csv": "S1234,x\n",
        "bad-code.csv": "code,description\nE12,Too short\n",
        "twice.csv": "code,description\nS1234,a\nS1234,b\n",
        "empty-description.csv": "code,description\nS1234,\n",
        "list.json": '["S1234"]',
    }
    for name, content in bad.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(ValueError, match=re.escape(str(path))):
            load_product_codes(path)
    with pytest.raises(ValueError, match=r"missing\.csv"):
        load_product_codes(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Label("G123425000017009"), InvalidIdentifier),  # wrong check character
        (lambda: Label(issue_din("G1234", 25, 17, "61")), InvalidIdentifier),  # check flags
        (lambda: Label(DIN, "CH-not-a-coi"), InvalidIdentifier),
        (lambda: Label(DIN, COI, "E12"), InvalidLabelData),
        (lambda: Label(DIN, COI, "S1234"), InvalidLabelData),  # a code without its description
        (lambda: Label(DIN, COI, expires_at=datetime(2026, 3, 1)), InvalidLabelData),
        (lambda: Label(DIN, COI, expires_at=datetime(1999, 3, 1, tzinfo=UTC)), InvalidLabelData),
        (lambda: Label(DIN, COI, lines=("a", "b", "c", "d")), InvalidLabelData),
        (lambda: Label(DIN, COI, lines=("x" * 49,)), InvalidLabelData),
        (lambda: Label(DIN, COI, lines=("tab\there",)), InvalidLabelData),
    ],
)
def test_what_no_label_may_carry_is_refused(build: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        build()  # type: ignore[operator]


def test_the_din_may_be_given_as_scanned() -> None:
    assert Label("=G12342500001700").din == DIN  # type: ignore[arg-type]
    assert Label("G1234 25 000017 00 5").din == DIN  # type: ignore[arg-type]


def test_v2v_labels_print_writes_a_pdf_or_a_png(tmp_path: Path) -> None:
    codes = tmp_path / "codes.json"
    codes.write_text('{"S1234": "CAR-T cells, autologous"}')
    out = tmp_path / "label.pdf"
    arguments = ["labels", "print", "--din", str(DIN), "--coi", COI, "--out", str(out)]
    arguments += ["--product-code", "S1234", "--expires", EXPIRES.isoformat()]
    runner = CliRunner()

    printed = runner.invoke(v2v, arguments, env={"V2V_PRODUCT_CODES_FILE": str(codes)})
    assert printed.exit_code == 0, printed.output
    assert "G1234 25 000017 00 5" in printed.output
    assert read_pdf_barcodes(out.read_bytes()) == barcode_texts(
        Label(DIN, COI, "S1234", EXPIRES, "CAR-T cells, autologous")
    )
    png = tmp_path / "label.png"
    shown = runner.invoke(v2v, ["labels", "print", "--din", str(DIN), "--out", str(png), "--png"])
    assert shown.exit_code == 0, shown.output
    assert read_barcodes(Image.open(png)) == barcode_texts(Label(DIN))


@pytest.mark.parametrize(
    ("arguments", "option", "named"),
    [
        (["--din", "G123425000017"], "--din", "has length 13"),
        (["--din", "G123425000017009"], "--din", "check character"),
        (["--din", str(DIN), "--coi", "CH12"], "--coi", "COI 'CH12'"),
        (["--din", str(DIN), "--expires", "2026-03-01T23:59"], "--expires", "UTC offset"),
        (["--din", str(DIN), "--expires", "tomorrow"], "--expires", "ISO 8601"),
        (["--din", str(DIN), "--product-code", "S1234"], "--product-code", "loaded no product"),
        (["--din", str(DIN), "--png"], "--out", "name it *.png"),  # a PNG in label.pdf
    ],
)
def test_v2v_labels_print_refuses_bad_input_naming_the_option(
    tmp_path: Path, arguments: list[str], option: str, named: str
) -> None:
    out = tmp_path / "label.pdf"
    result = CliRunner().invoke(
        v2v, ["labels", "print", *arguments, "--out", str(out)], env={"COLUMNS": "300"}
    )

    assert result.exit_code == 2
    assert f"Invalid value for {option}" in result.output and named in result.output
    assert not out.exists()
