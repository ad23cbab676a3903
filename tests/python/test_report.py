"""The performance report opened in headless Chromium: it loads without console errors,
its charts are in the DOM, and a screenshot shows the page (not a blank one)."""

import shutil
import struct
import subprocess
import zlib

from conftest import binary

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--window-size=1200,1600", "--enable-logging=stderr", "--v=0"]


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed (scripts/test.sh installs the Debian package)"
    return path


def pixels(png: bytes):
    """The RGB(A) rows of an 8-bit PNG, unfiltered (enough of PNG for a screenshot)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def test_report_renders_in_chromium(lake, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([binary(), "report", "performance", "--year", "2025", "--catalog",
                           str(lake / "catalog.toml"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    url = (out / "index.html").as_uri()

    dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, "--dump-dom", url], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    assert dom.stdout.count("<svg") >= 2 and "<rect" in dom.stdout, "the charts are in the page"
    for line in dom.stderr.splitlines():
        assert "CONSOLE" not in line and "Uncaught" not in line, line
        assert "net::ERR" not in line, f"the page loads something from elsewhere: {line}"

    shot = tmp_path / "shot.png"
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr
    width, height, channels, rows = pixels(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    colours, ink = set(), 0
    for row in rows[::4]:
        for x in range(0, width * channels, channels * 4):
            px = row[x:x + 3]
            colours.add(px)
            ink += px != b"\xff\xff\xff"
    assert len(colours) > 20, "the screenshot is not blank"
    assert ink > 0.02 * (width // 4) * (height // 4), "there is content on the page"
    # the bar colours of both charts are drawn
    assert bytes((0x2b, 0x6c, 0xb0)) in colours and bytes((0x2f, 0x85, 0x5a)) in colours


def test_chinese_labels_render_as_glyphs_not_boxes(lake, tmp_path):
    """The report's own font stack draws Chinese: two different Chinese strings of the same length
    give different pixels (a missing font draws every character as the same box), and both differ
    from a string of code points no font has."""
    import re
    out = tmp_path / "report"
    done = subprocess.run([binary(), "report", "performance", "--year", "2025", "--catalog",
                           str(lake / "catalog.toml"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fonts = re.search(r"body\{font-family:([^;]+);", (out / "index.html").read_text()).group(1)

    def shot(text, name):
        page = tmp_path / f"{name}.html"
        page.write_text(f"<!DOCTYPE html><html lang='zh-CN'><meta charset='utf-8'>"
                        f"<body style=\"margin:0;font-family:{fonts};font-size:48px\">{text}</body></html>",
                        encoding="utf-8")
        png = tmp_path / f"{name}.png"
        done = subprocess.run([chromium(), *[f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")],
                               "--window-size=600,100", f"--screenshot={png}", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and png.exists(), done.stderr
        return pixels(png.read_bytes())[3]

    title = shot("专项资金绩效", "title")
    same = shot("专专专专专专", "same")
    missing = shot("\U000F0000" * 6, "missing")
    ink = sum(px != 255 for row in title for px in row)
    assert ink > 500, "the Chinese text is drawn"
    assert title != same, "different characters are different glyphs (not the same box six times)"
    assert title != missing and same != missing, "Chinese is drawn with a font, not as missing glyphs"


def test_scores_open_in_a_spreadsheet_with_numbers_and_chinese_intact(lake, tmp_path):
    """scores.xlsx (for Excel) holds the same programs as scores.csv, numbers as numbers with the
    formats a finance reader expects, and the programs' Chinese names intact."""
    import csv
    import openpyxl
    out = tmp_path / "report"
    done = subprocess.run([binary(), "report", "performance", "--year", "2025", "--catalog",
                           str(lake / "catalog.toml"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(out / "scores.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    sheet = openpyxl.load_workbook(out / "scores.xlsx").active
    header = [c.value for c in sheet[1]]
    assert header == list(rows[0].keys())
    assert sheet.freeze_panes == "A2"
    col = {name: i for i, name in enumerate(header)}
    cells = list(sheet.iter_rows(min_row=2))
    assert len(cells) == len(rows)
    for cell_row, row in zip(cells, rows):
        name = cell_row[col["program_name"]].value
        assert name == row["program_name"] and any("\u4e00" <= ch <= "\u9fff" for ch in name)
        budget = cell_row[col["budget_amount"]]
        assert isinstance(budget.value, (int, float)) and abs(budget.value - float(row["budget_amount"])) < 0.005
        assert budget.number_format == "#,##0.00"
        total = cell_row[col["total_score"]]
        assert abs(total.value - float(row["total_score"])) < 1e-9 and total.number_format == "0.00"
        assert cell_row[col["budget_execution_rate"]].number_format == "0.0%"
