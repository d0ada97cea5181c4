"""The example catalogue files, and a province-sized catalogue for the test and the benchmark.

Run from the repository root to remake docs/catalogue-example.xlsx and docs/catalogue-example.csv:

    python docs/catalogue_example.py

The example is a small one-stop department of a province: the department, its one-stop section and two
offices; six procedures with their names in Vietnamese, Russian, Chinese and English; four touchpoints
(QR posters at the counters and a kiosk). `province()` makes a catalogue the size of Ben Tre's (578
procedures across 30 units, a touchpoint per unit) for tests/test_catalogue_import.py and
bench/catalogue_import.py. The columns are those of `feedback.catalogue_import` (README, "Catalogue import").
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Catalogue = dict[str, list[dict[str, Any]]]  # sheet → lines (column → value)

UNIT_COLUMNS = ["code", "parent", "name_vi", "name_ru", "name_zh", "name_en", "lang", "tz", "country", "action_days"]
SERVICE_COLUMNS = ["code", "name_vi", "name_ru", "name_zh", "name_en", "kind", "unit"]
TOUCHPOINT_COLUMNS = ["token", "name", "unit", "lang", "survey", "kind", "counter", "service", "retired"]
SHEETS = {"units": UNIT_COLUMNS, "services": SERVICE_COLUMNS, "touchpoints": TOUCHPOINT_COLUMNS}
RECORDS = {"units": "unit", "services": "service", "touchpoints": "touchpoint"}
CSV_COLUMNS = ["record", *dict.fromkeys(c for columns in SHEETS.values() for c in columns)]


def names(vi: str, ru: str, zh: str, en: str) -> dict[str, str]:
    return {"name_vi": vi, "name_ru": ru, "name_zh": zh, "name_en": en}


def example() -> Catalogue:
    """A department of planning and investment with its one-stop section."""
    units = [
        {
            "code": "KHDT",
            **names(
                "Sở Kế hoạch và Đầu tư",
                "Департамент планирования и инвестиций",
                "计划投资厅",
                "Department of Planning and Investment",
            ),
            "lang": "vi",
            "tz": "Asia/Ho_Chi_Minh",
            "country": "VN",
            "action_days": 5,
        },
        {
            "code": "KHDT-MC",
            "parent": "KHDT",
            **names("Bộ phận Một cửa", "Секция «одного окна»", "一站式服务窗口", "One-stop section"),
        },
        {
            "code": "KHDT-DKKD",
            "parent": "KHDT",
            **names(
                "Phòng Đăng ký kinh doanh",
                "Отдел регистрации предприятий",
                "企业登记处",
                "Business Registration Office",
            ),
        },
        {
            "code": "KHDT-DT",
            "parent": "KHDT",
            **names(
                "Phòng Đầu tư",
                "Отдел инвестиций",
                "投资处",
                "Investment Office",
            ),
        },
    ]
    services = [
        {
            "code": "KHDT.DN.01",
            **names(
                "Đăng ký thành lập doanh nghiệp tư nhân",
                "Регистрация частного предприятия",
                "私营企业设立登记",
                "Registration of a sole proprietorship",
            ),
        },
        {
            "code": "KHDT.DN.02",
            **names(
                "Đăng ký thành lập công ty TNHH một thành viên",
                "Регистрация ООО с одним участником",
                "一人有限责任公司设立登记",
                "Registration of a single-member limited liability company",
            ),
        },
        {
            "code": "KHDT.DN.03",
            **names(
                "Đăng ký thay đổi nội dung đăng ký doanh nghiệp",
                "Изменение сведений о регистрации предприятия",
                "企业登记事项变更",
                "Change of business registration details",
            ),
        },
        {
            "code": "KHDT.DN.04",
            **names(
                "Thông báo tạm ngừng kinh doanh",
                "Уведомление о приостановлении деятельности",
                "暂停经营通知",
                "Notice of a temporary suspension of business",
            ),
        },
        {
            "code": "KHDT.DT.01",
            **names(
                "Cấp Giấy chứng nhận đăng ký đầu tư",
                "Выдача свидетельства о регистрации инвестиций",
                "核发投资登记证",
                "Issue of an investment registration certificate",
            ),
        },
        {
            "code": "KHDT.DT.02",
            **names(
                "Điều chỉnh Giấy chứng nhận đăng ký đầu tư",
                "Изменение свидетельства о регистрации инвестиций",
                "调整投资登记证",
                "Amendment of an investment registration certificate",
            ),
        },
    ]
    for service in services:
        service.update({"kind": "administrative", "unit": "KHDT"})
    touchpoints = [
        {
            "token": "khdt-mc-1",
            "name": "Quầy 1 – Đăng ký doanh nghiệp",
            "unit": "KHDT-MC",
            "survey": "vn_one_stop",
            "kind": "qr",
            "counter": "1",
            "service": "KHDT.DN.01",
        },
        {
            "token": "khdt-mc-2",
            "name": "Quầy 2 – Đăng ký doanh nghiệp",
            "unit": "KHDT-MC",
            "survey": "vn_one_stop",
            "kind": "qr",
            "counter": "2",
            "service": "KHDT.DN.02",
        },
        {
            "token": "khdt-mc-3",
            "name": "Quầy 3 – Đầu tư",
            "unit": "KHDT-MC",
            "survey": "vn_one_stop",
            "kind": "qr",
            "counter": "3",
            "service": "KHDT.DT.01",
        },
        {
            "token": "khdt-mc-kiosk",
            "name": "Máy đánh giá tại sảnh",
            "unit": "KHDT-MC",
            "survey": "vn_one_stop",
            "kind": "kiosk",
            "retired": "no",
        },
    ]
    return {"units": units, "services": services, "touchpoints": touchpoints}


def province(units: int = 30, procedures: int = 578, root: str = "PROV") -> Catalogue:
    """A province's catalogue: a root unit and `units - 1` departments under it, `procedures` services
    spread over the departments (each owned by one), and a touchpoint per unit."""
    departments = [f"{root}-D{i:02d}" for i in range(1, units)]
    unit_lines = [
        {"code": root, **names("Tỉnh", "Провинция", "省", "Province"), "lang": "vi", "tz": "Asia/Ho_Chi_Minh"}
    ]
    for i, code in enumerate(departments, start=1):
        unit_lines.append(
            {"code": code, "parent": root, **names(f"Sở số {i}", f"Департамент № {i}", f"第{i}厅", f"Department {i}")}
        )
    service_lines = []
    for i in range(1, procedures + 1):
        owner = departments[(i - 1) % len(departments)]
        service_lines.append(
            {
                "code": f"{root}.{i:06d}",
                **names(f"Thủ tục số {i}", f"Процедура № {i}", f"第{i}项事项", f"Procedure {i}"),
                "kind": "administrative",
                "unit": owner,
            }
        )
    first_service = {line["unit"]: line["code"] for line in reversed(service_lines)}
    touchpoint_lines = []
    for code in [root, *departments]:
        touchpoint_lines.append(
            {
                "token": f"tp-{code.lower()}",
                "name": f"Quầy tiếp nhận {code}",
                "unit": code,
                "survey": "vn_one_stop",
                "kind": "qr",
                "counter": "1",
                "service": first_service.get(code, ""),
            }
        )
    return {"units": unit_lines, "services": service_lines, "touchpoints": touchpoint_lines}


def xlsx_bytes(catalogue: Catalogue) -> bytes:
    """The catalogue as a workbook: a sheet per kind, the column names on the first line."""
    import openpyxl
    from openpyxl.styles import Font

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for sheet, columns in SHEETS.items():
        worksheet = workbook.create_sheet(sheet)
        worksheet.append(columns)
        for cell in worksheet[1]:
            cell.font = Font(bold=True)
        for line in catalogue.get(sheet, []):
            worksheet.append([line.get(column) for column in columns])
        for index, column in enumerate(columns, start=1):
            longest = max([len(column), *(len(str(line.get(column) or "")) for line in catalogue.get(sheet, []))])
            worksheet.column_dimensions[openpyxl.utils.get_column_letter(index)].width = min(60, longest + 2)
        worksheet.freeze_panes = "A2"
    # Fixed dates, so the file changes only when its content does.
    workbook.properties.created = workbook.properties.modified = datetime(2025, 1, 1)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_text(catalogue: Catalogue) -> str:
    """The catalogue as one CSV table: `record` first, then the union of the kinds' columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for sheet, record in RECORDS.items():
        for line in catalogue.get(sheet, []):
            writer.writerow([record, *(line.get(column, "") for column in CSV_COLUMNS[1:])])
    return buffer.getvalue()


def main() -> None:
    catalogue = example()
    (HERE / "catalogue-example.xlsx").write_bytes(xlsx_bytes(catalogue))
    (HERE / "catalogue-example.csv").write_text(csv_text(catalogue), encoding="utf-8")
    print(f"wrote {HERE / 'catalogue-example.xlsx'} and {HERE / 'catalogue-example.csv'}")


if __name__ == "__main__":
    main()
