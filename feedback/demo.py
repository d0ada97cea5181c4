"""`feedback demo`: six agencies in four languages and months of deterministic, realistic history.

Everything goes through the code paths the app itself uses: `publish_template`, `add_unit`,
`add_service`, `add_touchpoint`, `set_exposure`, `ensure_user`, then `prepare` + `store_job` for
every response. Only the random generator is seeded, so the same seed and `today` give the same
organisation tokens, response ids and answers.

The story a manager should find in it:
- Hai Phong Customs (vi), Sakhalin Customs (ru), Guangxi's service hall (zh) and a US service
  centre (en) with busy counters, 90-97 % satisfied;
- Kien Giang Department of Finance with its 11 procedures, a few hundred ratings a month;
- a Ben Tre commune with a handful of ratings a week: too few to judge (n < 30 a month);
- one counter, HP-KV1 "Quầy 3", with a bad fortnight 30 to 16 days ago (about 60 % satisfied);
- the one-stop dossiers behind Kien Giang's and Ben Tre's ratings (about 1 % returned late, their
  applicants less satisfied), and Guangxi's error rate, plan completion and case closure by month.
"""

from __future__ import annotations

import base64
import math
import random
import secrets
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from feedback import dossiers, indicators
from feedback.auth import ensure_user, save_user
from feedback.catalog import load_snapshot
from feedback.db import holding_deferred
from feedback.dossiers import Dossier
from feedback.events import stamp
from feedback.indicators import Figure, period_bounds
from feedback.ingest import prepare, store_job
from feedback.models import Submission
from feedback.organisation import add_service, add_touchpoint, add_unit, set_exposure
from feedback.plugins import PluginManager
from feedback.store import events as event_store
from feedback.store import organisation as organisation_store
from feedback.store import responses as response_store
from feedback.surveys import publish_template
from feedback.unit_settings import update_unit_settings

SURVEYS = ("csat", "haochaping", "vash_kontrol", "vn_one_stop", "a11_v2", "govuk")
COMMIT_EVERY = 5000
# Days before `today` of the bad fortnight at one counter (inclusive).
BAD_FROM, BAD_TO = 30, 16
BAD_SATISFIED = 0.60
# Bad reviews of the last this many days open corrective actions (the queue a manager finds).
ACTIONS_FROM = 14
# One-stop dossiers (Kien Giang, Ben Tre): the share returned late, how much less satisfied their
# applicants are, the days a procedure allows, and the dossiers handled for each one rated.
LATE_SHARE = 0.012
LATE_PENALTY = 0.3
DUE_DAYS = 10
UNRATED_PER_RATED = 2
# Figures kept outside the ratings, per month: (unit, indicator, denominator, share of the numerator).
INDICATOR_FIGURES = (
    ("GX", "error_rate", 12000, 0.0003),  # Guangxi: an error rate of 0.03 %
    ("GX", "plan_completion", 650, 0.9908),  # plan completion 99.08 %
    ("GX", "case_closure", 1400, 0.9571),  # case closure 95.71 %
    ("KG", "error_rate", 450, 0.002),
    ("HP", "plan_completion", 120, 0.97),
)

# Relative traffic by weekday (Monday first): a Monday peak, weekends near zero.
WEEKDAY = (1.28, 1.06, 1.0, 0.98, 0.9, 0.035, 0.008)
# Relative traffic by local hour, 08:00-16:59, per country: lunch breaks differ.
HOURS = tuple(range(8, 17))
HOUR_PROFILE = {
    # Vietnam: lunch 11:30-13:30, a peak right after it.
    "vi": (1.0, 1.3, 1.25, 0.6, 0.05, 1.2, 1.45, 1.1, 0.6),
    # Russia: opens 9:00 in practice, lunch 13:00-14:00.
    "ru": (0.35, 1.2, 1.3, 1.2, 1.0, 0.05, 1.45, 1.2, 0.8),
    # China: lunch 12:00-14:30.
    "zh": (0.7, 1.3, 1.3, 1.05, 0.05, 0.3, 1.45, 1.3, 0.8),
    # USA: staggered lunch, a bump after it.
    "en": (0.7, 1.2, 1.3, 1.15, 0.8, 1.25, 1.3, 1.0, 0.7),
}


# ------------------------------------------------------------------------------------------------
# The organisation
# ------------------------------------------------------------------------------------------------


@dataclass
class TP:
    """A touchpoint to create: `service` None means the counter takes every service of its unit."""

    name: str
    kind: str
    counter: str | None = None
    service: str | None = None
    weight: float = 1.0
    survey: str | None = None  # defaults to the root's survey


@dataclass
class UnitSpec:
    code: str
    name: str
    names: dict[str, str]
    parent: str | None = None
    # Customers served per ordinary weekday, by service (only where customers are served).
    traffic: dict[str, float] = field(default_factory=dict)
    touchpoints: list[TP] = field(default_factory=list)
    offered: float = 0.85  # share of customers offered the survey
    rate: float = 0.22  # share of those offered who answer


@dataclass
class Agency:
    code: str
    lang: str
    tz: str
    survey: str
    services: list[tuple[str, dict[str, str]]]  # (code, name in each language)
    service_kind: str
    units: list[UnitSpec]
    manager: str
    case_ref: str  # vn_customs | ru_customs | vn_dossier | cn_case | none
    case_share: float
    other_langs: dict[str, float]  # respondents who switch language, by share
    dossier_prefix: str = ""


def _n(vi: str, ru: str, zh: str, en: str) -> dict[str, str]:
    return {"vi": vi, "ru": ru, "zh": zh, "en": en}


# Each service's name in all four languages (vi, ru, zh, en), so no page falls back to another script.
HP_SERVICES = [
    (
        "HP-NK",
        _n(
            "Thủ tục hải quan đối với hàng hóa nhập khẩu thương mại",
            "Таможенное оформление коммерческого импорта",
            "商业进口货物海关手续",
            "Customs clearance of commercial imports",
        ),
    ),
    (
        "HP-XK",
        _n(
            "Thủ tục hải quan đối với hàng hóa xuất khẩu thương mại",
            "Таможенное оформление коммерческого экспорта",
            "商业出口货物海关手续",
            "Customs clearance of commercial exports",
        ),
    ),
    (
        "HP-KBS",
        _n(
            "Khai bổ sung hồ sơ hải quan",
            "Внесение изменений в таможенную декларацию",
            "补充海关申报",
            "Amending a customs declaration",
        ),
    ),
    (
        "HP-GC",
        _n(
            "Thủ tục hải quan đối với hàng hóa gia công, sản xuất xuất khẩu",
            "Таможенное оформление товаров для переработки и экспортного производства",
            "加工贸易及出口生产货物海关手续",
            "Customs procedure for processing and export-production goods",
        ),
    ),
    (
        "HP-QC",
        _n(
            "Thủ tục hải quan đối với hàng hóa quá cảnh",
            "Таможенное оформление транзитных товаров",
            "过境货物海关手续",
            "Customs procedure for goods in transit",
        ),
    ),
    (
        "HP-HT",
        _n(
            "Hoàn thuế đối với hàng hóa xuất khẩu, nhập khẩu",
            "Возврат ввозных и вывозных пошлин",
            "进出口货物退税",
            "Refund of import and export duties",
        ),
    ),
    (
        "HP-MT",
        _n(
            "Miễn thuế đối với hàng hóa xuất khẩu, nhập khẩu",
            "Освобождение от ввозных и вывозных пошлин",
            "进出口货物免税",
            "Exemption from import and export duties",
        ),
    ),
]

SAK_SERVICES = [
    (
        "SAK-DT",
        _n(
            "Khai báo hải quan và thông quan hàng hóa",
            "Таможенное декларирование и выпуск товаров",
            "货物报关与放行",
            "Declaring and releasing goods",
        ),
    ),
    (
        "SAK-TR",
        _n(
            "Thủ tục quá cảnh hải quan cho hàng hóa",
            "Помещение товаров под таможенную процедуру таможенного транзита",
            "货物海关过境手续",
            "Customs transit",
        ),
    ),
    (
        "SAK-KDT",
        _n(
            "Sửa đổi tờ khai hàng hóa",
            "Внесение изменений в декларацию на товары",
            "修改货物报关单",
            "Amending a goods declaration",
        ),
    ),
    (
        "SAK-KONS",
        _n(
            "Tư vấn cho doanh nghiệp xuất nhập khẩu",
            "Консультирование участников внешнеэкономической деятельности",
            "对外贸易经营者咨询",
            "Advice to foreign-trade participants",
        ),
    ),
    (
        "SAK-FL",
        _n(
            "Thủ tục hải quan cho hàng hóa sử dụng cá nhân",
            "Таможенное оформление товаров для личного пользования",
            "个人自用物品通关",
            "Clearing goods for personal use",
        ),
    ),
]

KG_SERVICES = [
    (
        "KG-01",
        _n(
            "Cấp mã số đơn vị có quan hệ với ngân sách",
            "Присвоение кода участника бюджетных отношений",
            "核发预算关系单位代码",
            "Issuing a budget-relation unit code",
        ),
    ),
    (
        "KG-02",
        _n(
            "Quyết toán dự án hoàn thành sử dụng vốn đầu tư công",
            "Окончательный расчёт по завершённым проектам государственных инвестиций",
            "公共投资竣工项目决算",
            "Final settlement of completed public investment projects",
        ),
    ),
    (
        "KG-03",
        _n(
            "Thẩm định phương án giá hàng hóa, dịch vụ do Nhà nước định giá",
            "Экспертиза ценовых предложений на товары и услуги с государственными ценами",
            "政府定价商品和服务价格方案审核",
            "Appraisal of price proposals for state-priced goods and services",
        ),
    ),
    ("KG-04", _n("Đăng ký giá hàng hóa, dịch vụ", "Регистрация цен", "价格登记", "Price registration")),
    ("KG-05", _n("Kê khai giá hàng hóa, dịch vụ", "Декларирование цен", "价格申报", "Price declaration")),
    (
        "KG-06",
        _n(
            "Quyết định mua sắm tài sản công",
            "Решение о закупке государственного имущества",
            "公共资产采购决定",
            "Decision on procurement of public assets",
        ),
    ),
    (
        "KG-07",
        _n(
            "Quyết định thanh lý tài sản công",
            "Решение о списании государственного имущества",
            "公共资产清理决定",
            "Decision on liquidation of public assets",
        ),
    ),
    (
        "KG-08",
        _n(
            "Quyết định điều chuyển tài sản công",
            "Решение о передаче государственного имущества",
            "公共资产调拨决定",
            "Decision on transfer of public assets",
        ),
    ),
    (
        "KG-09",
        _n(
            "Quyết định bán tài sản công",
            "Решение о продаже государственного имущества",
            "公共资产出售决定",
            "Decision on sale of public assets",
        ),
    ),
    (
        "KG-10",
        _n(
            "Quyết định thu hồi tài sản công",
            "Решение об изъятии государственного имущества",
            "公共资产收回决定",
            "Decision on recovery of public assets",
        ),
    ),
    (
        "KG-11",
        _n(
            "Xác lập quyền sở hữu toàn dân về tài sản",
            "Установление права государственной собственности на имущество",
            "确立资产全民所有权",
            "Establishing state ownership of assets",
        ),
    ),
]

BT_SERVICES = [
    ("BT-KS", _n("Đăng ký khai sinh", "Регистрация рождения", "出生登记", "Birth registration")),
    ("BT-KH", _n("Đăng ký kết hôn", "Регистрация брака", "结婚登记", "Marriage registration")),
    (
        "BT-CT",
        _n(
            "Chứng thực bản sao từ bản chính",
            "Заверение копий с подлинников документов",
            "复印件与原件相符证明",
            "Certifying copies of original documents",
        ),
    ),
    (
        "BT-HN",
        _n(
            "Cấp giấy xác nhận tình trạng hôn nhân",
            "Справка о семейном положении",
            "婚姻状况证明",
            "Certificate of marital status",
        ),
    ),
]

GX_SERVICES = [
    (
        "GX-SCXK",
        _n(
            "Cấp giấy phép sản xuất sản phẩm công nghiệp",
            "Лицензия на производство промышленной продукции",
            "工业产品生产许可证核发",
            "Industrial product production licence",
        ),
    ),
    (
        "GX-TZSB",
        _n(
            "Cấp phép đơn vị sản xuất thiết bị đặc chủng",
            "Лицензирование производителей специального оборудования",
            "特种设备生产单位许可",
            "Licensing of special equipment manufacturers",
        ),
    ),
    (
        "GX-TZRY",
        _n(
            "Công nhận năng lực người vận hành thiết bị đặc chủng",
            "Аттестация персонала, работающего со специальным оборудованием",
            "特种设备作业人员资格认定",
            "Qualification of special equipment operators",
        ),
    ),
    (
        "GX-JLQJ",
        _n(
            "Phê duyệt mẫu phương tiện đo",
            "Утверждение типа средств измерений",
            "计量器具型式批准",
            "Pattern approval of measuring instruments",
        ),
    ),
    (
        "GX-JLBZ",
        _n(
            "Phê duyệt chuẩn đo lường",
            "Утверждение эталонов",
            "计量标准器具核准",
            "Approval of measurement standards",
        ),
    ),
    (
        "GX-JYJC",
        _n(
            "Công nhận năng lực tổ chức kiểm định, thử nghiệm",
            "Аккредитация испытательных и контрольных организаций",
            "检验检测机构资质认定",
            "Accreditation of inspection and testing bodies",
        ),
    ),
]

US_SERVICES = [
    (
        "US-DS11",
        _n(
            "Đơn xin cấp hộ chiếu (mẫu DS-11)",
            "Заявление на паспорт (форма DS-11)",
            "护照申请（DS-11 表）",
            "Passport application (Form DS-11)",
        ),
    ),
    (
        "US-DS82",
        _n(
            "Gia hạn hộ chiếu (mẫu DS-82)",
            "Продление паспорта (форма DS-82)",
            "护照续签（DS-82 表）",
            "Passport renewal (Form DS-82)",
        ),
    ),
    (
        "US-EXP",
        _n(
            "Dịch vụ cấp hộ chiếu nhanh",
            "Ускоренное оформление паспорта",
            "加急护照服务",
            "Expedited passport service",
        ),
    ),
    (
        "US-BEN",
        _n(
            "Giải đáp về trợ cấp liên bang",
            "Справки о федеральных пособиях",
            "联邦福利咨询",
            "Federal benefits enquiry",
        ),
    ),
]


def _hp_branch(
    code: str, vi: str, en: str, ru: str, zh: str, traffic: dict[str, float], touchpoints: list[TP]
) -> UnitSpec:
    return UnitSpec(code, vi, _n(vi, ru, zh, en), parent="HP", traffic=traffic, touchpoints=touchpoints)


AGENCIES: list[Agency] = [
    Agency(
        code="HP",
        lang="vi",
        tz="Asia/Ho_Chi_Minh",
        survey="csat",
        services=HP_SERVICES,
        service_kind="customs",
        manager="nguyen.van.hung",
        case_ref="vn_customs",
        case_share=0.6,
        other_langs={"en": 0.04, "zh": 0.015},
        units=[
            UnitSpec(
                "HP",
                "Cục Hải quan thành phố Hải Phòng",
                _n(
                    "Cục Hải quan thành phố Hải Phòng",
                    "Таможенное управление города Хайфон",
                    "海防市海关局",
                    "Hai Phong Customs Department",
                ),
                traffic={"HP-HT": 55, "HP-MT": 30},
                offered=0.9,
                rate=0.25,
                touchpoints=[
                    TP("Bộ phận một cửa – Văn phòng Cục, quầy 1", "kiosk", "Quầy 1"),
                    TP("Mã QR trên phiếu tiếp nhận hồ sơ hoàn thuế", "qr", None, "HP-HT", 0.6),
                ],
            ),
            _hp_branch(
                "HP-KV1",
                "Chi cục Hải quan cửa khẩu cảng Hải Phòng khu vực I",
                "Hai Phong Port Customs Branch, Area I",
                "Таможенный отдел порта Хайфон, зона I",
                "海防港口岸海关第一分局",
                {"HP-NK": 480, "HP-XK": 300, "HP-KBS": 110},
                [
                    TP("Quầy 1 – Tiếp nhận tờ khai nhập khẩu", "kiosk", "Quầy 1", "HP-NK"),
                    TP("Quầy 2 – Tiếp nhận tờ khai xuất khẩu", "kiosk", "Quầy 2", "HP-XK"),
                    TP("Quầy 3 – Kiểm tra hồ sơ", "kiosk", "Quầy 3", None, 1.1),
                    TP("Quầy 4 – Khai bổ sung", "qr", "Quầy 4", "HP-KBS"),
                    TP("Mã QR tại sảnh chờ", "qr", None, None, 0.35),
                ],
            ),
            _hp_branch(
                "HP-KV2",
                "Chi cục Hải quan cửa khẩu cảng Hải Phòng khu vực II",
                "Hai Phong Port Customs Branch, Area II",
                "Таможенный отдел порта Хайфон, зона II",
                "海防港口岸海关第二分局",
                {"HP-NK": 300, "HP-XK": 210, "HP-KBS": 50},
                [
                    TP("Quầy 1", "kiosk", "Quầy 1"),
                    TP("Quầy 2", "kiosk", "Quầy 2"),
                    TP("Mã QR tại sảnh chờ", "qr", None, None, 0.4),
                ],
            ),
            _hp_branch(
                "HP-KV3",
                "Chi cục Hải quan cửa khẩu cảng Hải Phòng khu vực III",
                "Hai Phong Port Customs Branch, Area III",
                "Таможенный отдел порта Хайфон, зона III",
                "海防港口岸海关第三分局",
                {"HP-NK": 230, "HP-XK": 240, "HP-GC": 110},
                [
                    TP("Quầy 1", "kiosk", "Quầy 1"),
                    TP("Quầy 2 – Gia công, sản xuất xuất khẩu", "qr", "Quầy 2", "HP-GC"),
                    TP("Mã QR trên phiếu hướng dẫn", "qr", None, None, 0.5),
                ],
            ),
            _hp_branch(
                "HP-DV",
                "Chi cục Hải quan cửa khẩu cảng Đình Vũ",
                "Dinh Vu Port Customs Branch",
                "Таможенный отдел порта Диньву",
                "亭武港口岸海关分局",
                {"HP-NK": 340, "HP-XK": 200, "HP-QC": 60},
                [
                    TP("Quầy 1", "kiosk", "Quầy 1"),
                    TP("Quầy 2", "kiosk", "Quầy 2"),
                    TP("Quầy 3 – Hàng quá cảnh", "qr", "Quầy 3", "HP-QC"),
                ],
            ),
        ],
    ),
    Agency(
        code="SAK",
        lang="ru",
        tz="Asia/Sakhalin",
        survey="vash_kontrol",
        services=SAK_SERVICES,
        service_kind="customs",
        manager="ivanova.elena",
        case_ref="ru_customs",
        case_share=0.55,
        other_langs={"en": 0.02, "zh": 0.02},
        units=[
            UnitSpec(
                "SAK",
                "Сахалинская таможня",
                _n("Hải quan Sakhalin", "Сахалинская таможня", "萨哈林海关", "Sakhalin Customs"),
            ),
            UnitSpec(
                "SAK-YS",
                "Южно-Сахалинский таможенный пост",
                _n(
                    "Trạm hải quan Yuzhno-Sakhalinsk",
                    "Южно-Сахалинский таможенный пост",
                    "南萨哈林斯克海关站",
                    "Yuzhno-Sakhalinsk Customs Post",
                ),
                parent="SAK",
                offered=0.8,
                rate=0.3,
                traffic={"SAK-DT": 230, "SAK-TR": 40, "SAK-KDT": 35, "SAK-KONS": 60, "SAK-FL": 70},
                touchpoints=[
                    TP("Окно 1", "kiosk", "Окно 1"),
                    TP("Окно 2", "kiosk", "Окно 2"),
                    TP("Окно 3 — консультации", "qr", "Окно 3", "SAK-KONS"),
                    TP("QR-код в зале ожидания", "qr", None, None, 0.3),
                ],
            ),
            UnitSpec(
                "SAK-KOR",
                "Корсаковский таможенный пост",
                _n(
                    "Trạm hải quan Korsakov",
                    "Корсаковский таможенный пост",
                    "科尔萨科夫海关站",
                    "Korsakov Customs Post",
                ),
                parent="SAK",
                offered=0.7,
                rate=0.25,
                traffic={"SAK-DT": 60, "SAK-TR": 25, "SAK-FL": 110},
                touchpoints=[
                    TP("Окно 1", "kiosk", "Окно 1"),
                    TP("QR-код в пассажирском терминале", "qr", None, "SAK-FL", 0.8),
                ],
            ),
        ],
    ),
    Agency(
        code="KG",
        lang="vi",
        tz="Asia/Ho_Chi_Minh",
        survey="vn_one_stop",
        services=KG_SERVICES,
        service_kind="administrative",
        manager="tran.thi.lan",
        case_ref="vn_dossier",
        case_share=0.9,
        other_langs={"en": 0.01},
        dossier_prefix="000.00.17.H33",
        units=[
            UnitSpec(
                "KG",
                "Sở Tài chính tỉnh Kiên Giang",
                _n(
                    "Sở Tài chính tỉnh Kiên Giang",
                    "Департамент финансов провинции Кьензянг",
                    "坚江省财政厅",
                    "Kien Giang Department of Finance",
                ),
            ),
            UnitSpec(
                "KG-MC",
                "Bộ phận Một cửa Sở Tài chính tỉnh Kiên Giang",
                _n(
                    "Bộ phận Một cửa Sở Tài chính tỉnh Kiên Giang",
                    "Отдел «единого окна» Департамента финансов",
                    "坚江省财政厅一站式窗口",
                    "One-stop section, Kien Giang Department of Finance",
                ),
                parent="KG",
                offered=0.92,
                rate=0.3,
                traffic={
                    "KG-01": 9,
                    "KG-02": 4,
                    "KG-03": 1.5,
                    "KG-04": 6,
                    "KG-05": 8,
                    "KG-06": 3,
                    "KG-07": 2,
                    "KG-08": 1.5,
                    "KG-09": 1,
                    "KG-10": 0.8,
                    "KG-11": 1.2,
                },
                touchpoints=[
                    TP("Quầy 1", "kiosk", "Quầy 1"),
                    TP("Quầy 2", "kiosk", "Quầy 2"),
                    TP("Mã QR trên giấy tiếp nhận hồ sơ và hẹn trả kết quả", "qr", None, None, 0.8),
                ],
            ),
        ],
    ),
    Agency(
        code="BT",
        lang="vi",
        tz="Asia/Ho_Chi_Minh",
        survey="vn_one_stop",
        services=BT_SERVICES,
        service_kind="administrative",
        manager="le.minh.tuan",
        case_ref="vn_dossier",
        case_share=0.85,
        other_langs={},
        dossier_prefix="000.28.35.H05",
        units=[
            UnitSpec(
                "BT",
                "Ủy ban nhân dân xã Phú Túc",
                _n(
                    "Ủy ban nhân dân xã Phú Túc, huyện Châu Thành, tỉnh Bến Tre",
                    "Народный комитет общины Футук (уезд Тяутхань, провинция Бенче)",
                    "槟椥省州城县富宿社人民委员会",
                    "Phu Tuc Commune People's Committee (Chau Thanh, Ben Tre)",
                ),
            ),
            UnitSpec(
                "BT-MC",
                "Bộ phận Một cửa UBND xã Phú Túc",
                _n(
                    "Bộ phận Một cửa UBND xã Phú Túc",
                    "«Единое окно» общины Футук",
                    "富宿社一站式窗口",
                    "One-stop section, Phu Tuc Commune",
                ),
                parent="BT",
                offered=0.6,
                rate=0.15,
                traffic={"BT-KS": 2.5, "BT-KH": 0.8, "BT-CT": 6, "BT-HN": 1.7},
                touchpoints=[
                    TP("Quầy tiếp nhận và trả kết quả", "kiosk", "Quầy 1"),
                    TP("Mã QR trên phiếu hẹn trả kết quả", "qr", None, None, 0.7),
                ],
            ),
        ],
    ),
    Agency(
        code="GX",
        lang="zh",
        tz="Asia/Shanghai",
        survey="haochaping",
        services=GX_SERVICES,
        service_kind="administrative",
        manager="wang.fang",
        case_ref="cn_case",
        case_share=0.7,
        other_langs={"vi": 0.01, "en": 0.01},
        units=[
            UnitSpec(
                "GX",
                "广西壮族自治区质量技术监督局",
                _n(
                    "Cục Giám sát chất lượng và kỹ thuật Khu tự trị dân tộc Choang Quảng Tây",
                    "Управление по надзору за качеством и техническому надзору Гуанси-Чжуанского автономного района",
                    "广西壮族自治区质量技术监督局",
                    "Guangxi Zhuang Autonomous Region Bureau of Quality and Technical Supervision",
                ),
            ),
            UnitSpec(
                "GX-DT",
                "广西质量技术监督政务服务大厅",
                _n(
                    "Sảnh dịch vụ hành chính công giám sát chất lượng kỹ thuật Quảng Tây",
                    "Центр государственных услуг по надзору за качеством (Гуанси)",
                    "广西质量技术监督政务服务大厅",
                    "Guangxi Quality and Technical Supervision Service Hall",
                ),
                parent="GX",
                offered=0.9,
                rate=0.3,
                traffic={
                    "GX-SCXK": 260,
                    "GX-TZSB": 180,
                    "GX-TZRY": 420,
                    "GX-JLQJ": 140,
                    "GX-JLBZ": 110,
                    "GX-JYJC": 170,
                },
                touchpoints=[
                    TP("1号窗口 生产许可", "kiosk", "1号窗口", "GX-SCXK"),
                    TP("2号窗口 特种设备", "kiosk", "2号窗口", "GX-TZSB"),
                    TP("3号窗口 特种设备作业人员", "kiosk", "3号窗口", "GX-TZRY"),
                    TP("4号窗口 计量", "kiosk", "4号窗口", "GX-JLQJ"),
                    TP("5号窗口 综合受理", "kiosk", "5号窗口"),
                    TP("大厅扫码评价", "qr", None, None, 0.4),
                ],
            ),
        ],
    ),
    Agency(
        code="US-1",
        lang="en",
        tz="America/New_York",
        survey="a11_v2",
        services=US_SERVICES,
        service_kind="administrative",
        manager="j.miller",
        case_ref="none",
        case_share=0.0,
        other_langs={"vi": 0.02, "zh": 0.02, "ru": 0.01},
        units=[
            UnitSpec(
                "US-1",
                "Northeast Passport and Benefits Service Center",
                _n(
                    "Trung tâm dịch vụ hộ chiếu và phúc lợi khu vực Đông Bắc",
                    "Северо-восточный центр обслуживания по паспортам и пособиям",
                    "东北区护照与福利服务中心",
                    "Northeast Passport and Benefits Service Center",
                ),
                offered=0.8,
                rate=0.25,
                traffic={"US-DS11": 280, "US-DS82": 120, "US-EXP": 110, "US-BEN": 60},
                touchpoints=[
                    TP("Window 1", "kiosk", "Window 1"),
                    TP("Window 2", "kiosk", "Window 2"),
                    TP("Window 3 – Expedited service", "kiosk", "Window 3", "US-EXP"),
                    TP("QR code on the application receipt", "qr", None, None, 0.6),
                    TP("Exit survey QR code (GOV.UK format)", "qr", None, None, 0.3, survey="govuk"),
                ],
            ),
        ],
    ),
]

BAD_UNIT, BAD_COUNTER = "HP-KV1", "Quầy 3"

# Whose working-day calendar each agency's deadlines follow, and its days to rectify a bad review
# (local rules differ: 15 working days in Sichuan, 5 in Dezhou, 7 around Beijing).
JURISDICTION = {
    "HP": ("VN", 7),
    "SAK": ("RU", 3),
    "KG": ("VN", 7),
    "BT": ("VN", 7),
    "GX": ("CN", 5),
    "US-1": ("US", 10),
}

# Quality objectives from the articles and the like, per unit (ISO 9001 6.2).
OBJECTIVES: list[tuple[str, dict[str, Any]]] = [
    (
        "GX",
        {
            "title": "满意率 ≥ 99.47 %",
            "titles": _n(
                "Tỷ lệ hài lòng ≥ 99,47 %", "Удовлетворённость ≥ 99,47 %", "满意率 ≥ 99.47 %", "Satisfaction ≥ 99.47 %"
            ),
            "metric": "satisfaction",
            "target": 0.9947,
            "period": "month",
        },
    ),
    (
        "GX",
        {
            "title": "差评按时整改率 ≥ 95 %",
            "titles": _n(
                "Khắc phục đánh giá kém đúng hạn ≥ 95 %",
                "Устранение по негативным оценкам в срок ≥ 95 %",
                "差评按时整改率 ≥ 95 %",
                "Bad reviews rectified on time ≥ 95 %",
            ),
            "metric": "on_time_rectification",
            "target": 0.95,
            "period": "quarter",
            "min_n": 5,
        },
    ),
    (
        "GX-DT",
        {
            "title": "差评率 ≤ 1 %",
            "titles": _n(
                "Tỷ lệ đánh giá kém ≤ 1 %", "Доля негативных оценок ≤ 1 %", "差评率 ≤ 1 %", "Bad review rate ≤ 1 %"
            ),
            "metric": "bad_review_rate",
            "comparator": "<=",
            "target": 0.01,
            "period": "month",
        },
    ),
    (
        "KG",
        {
            "title": "Xử lý phản ánh đúng hạn ≥ 99,8 %",
            "titles": _n(
                "Xử lý phản ánh đúng hạn ≥ 99,8 %",
                "Обращения рассмотрены в срок ≥ 99,8 %",
                "反映按时处理率 ≥ 99.8 %",
                "Feedback handled on time ≥ 99.8 %",
            ),
            "metric": "on_time_rectification",
            "target": 0.998,
            "period": "quarter",
            "min_n": 5,
        },
    ),
    (
        "KG",
        {
            "title": "Tỷ lệ không hài lòng thấp: không hài lòng ≤ 5 % (QĐ 766)",
            "titles": _n(
                "Tỷ lệ không hài lòng thấp: không hài lòng ≤ 5 % (QĐ 766)",
                "Недовольных ≤ 5 % (решение 766)",
                "不满意率 ≤ 5 %（第766号决定）",
                "Dissatisfied ≤ 5 % (Decision 766)",
            ),
            "metric": "not_dissatisfied",
            "target": 0.95,
            "period": "quarter",
        },
    ),
    (
        "KG",
        {
            "title": "Trả kết quả đúng hẹn (đánh giá) ≥ 85/100",
            "titles": _n(
                "Trả kết quả đúng hẹn (đánh giá) ≥ 85/100",
                "Результат в срок (оценка) ≥ 85 из 100",
                "按时办结（评价）≥ 85/100",
                "Results on time (rated) ≥ 85/100",
            ),
            "metric": "indicator_mean",
            "indicator": "on_time",
            "target": 85.0,
            "period": "quarter",
        },
    ),
    (
        "KG-MC",
        {
            "title": "Tỷ lệ phản hồi ≥ 15 %",
            "titles": _n("Tỷ lệ phản hồi ≥ 15 %", "Доля ответивших ≥ 15 %", "回复率 ≥ 15 %", "Response rate ≥ 15 %"),
            "metric": "response_rate",
            "target": 0.15,
            "period": "month",
        },
    ),
    (
        "KG-MC",
        {
            "title": "Hồ sơ trả đúng hạn ≥ 98 %",
            "titles": _n(
                "Hồ sơ trả đúng hạn ≥ 98 %",
                "Дела, возвращённые в срок, ≥ 98 %",
                "按时办结率 ≥ 98 %",
                "Dossiers returned on time ≥ 98 %",
            ),
            "metric": "dossier_on_time",
            "target": 0.98,
            "period": "month",
        },
    ),
    (
        "GX",
        {
            "title": "差错率 ≤ 0.05 %",
            "titles": _n("Tỷ lệ sai sót ≤ 0,05 %", "Доля ошибок ≤ 0,05 %", "差错率 ≤ 0.05 %", "Error rate ≤ 0.05 %"),
            "metric": "indicator_value",
            "indicator": "error_rate",
            "target": 0.0005,
            "period": "quarter",
            "min_n": 1000,
        },
    ),
    (
        "BT",
        {
            "title": "Không hài lòng ≤ 5 % (QĐ 766)",
            "titles": _n(
                "Không hài lòng ≤ 5 % (QĐ 766)",
                "Недовольных ≤ 5 % (решение 766)",
                "不满意 ≤ 5 %（第766号决定）",
                "Dissatisfied ≤ 5 % (Decision 766)",
            ),
            "metric": "not_dissatisfied",
            "target": 0.95,
            "period": "month",
        },
    ),
    (
        "HP",
        {
            "title": "Mức độ hài lòng ≥ 90 %",
            "titles": _n("Mức độ hài lòng ≥ 90 %", "Удовлетворённость ≥ 90 %", "满意率 ≥ 90 %", "Satisfaction ≥ 90 %"),
            "metric": "satisfaction",
            "target": 0.90,
            "period": "quarter",
        },
    ),
    (
        "HP-KV1",
        {
            "title": "Mức độ hài lòng ≥ 90 % (30 ngày)",
            "titles": _n(
                "Mức độ hài lòng ≥ 90 % (30 ngày)",
                "Удовлетворённость ≥ 90 % (30 дней)",
                "满意率 ≥ 90 %（30天）",
                "Satisfaction ≥ 90 % (30 days)",
            ),
            "metric": "satisfaction",
            "target": 0.90,
            "period": "rolling_30",
        },
    ),
    (
        "SAK",
        {
            "title": "Средняя оценка ≥ 80 из 100",
            "titles": _n(
                "Điểm trung bình ≥ 80/100", "Средняя оценка ≥ 80 из 100", "平均分 ≥ 80/100", "Mean score ≥ 80/100"
            ),
            "metric": "mean_score",
            "target": 80.0,
            "period": "month",
        },
    ),
    (
        "SAK-YS",
        {
            "title": "Обратные звонки ≥ 95 %",
            "titles": _n("Gọi lại ≥ 95 %", "Обратные звонки ≥ 95 %", "回访率 ≥ 95 %", "Call-backs ≥ 95 %"),
            "metric": "callback_rate",
            "target": 0.95,
            "period": "month",
            "min_n": 5,
        },
    ),
    (
        "SAK-YS",
        {
            "title": "Время ожидания ≥ 75 из 100",
            "titles": _n(
                "Thời gian chờ ≥ 75/100", "Время ожидания ≥ 75 из 100", "等候时间 ≥ 75/100", "Waiting time ≥ 75/100"
            ),
            "metric": "indicator_mean",
            "indicator": "waiting_time",
            "target": 75.0,
            "period": "month",
        },
    ),
    (
        "US-1",
        {
            "title": "Customer satisfaction ≥ 85 %",
            "titles": _n(
                "Mức độ hài lòng của khách hàng ≥ 85 %",
                "Удовлетворённость клиентов ≥ 85 %",
                "客户满意度 ≥ 85 %",
                "Customer satisfaction ≥ 85 %",
            ),
            "metric": "satisfaction",
            "target": 0.85,
            "period": "quarter",
        },
    ),
]
# Officer codes as the queue systems print them, by unit.
OFFICER_PREFIX = {
    "HP": "HQHP",
    "HP-KV1": "KV1",
    "HP-KV2": "KV2",
    "HP-KV3": "KV3",
    "HP-DV": "DVU",
    "SAK-YS": "ЮСТП",
    "SAK-KOR": "КТП",
    "KG-MC": "STC",
    "BT-MC": "PT",
    "GX-DT": "GXZJ",
    "US-1": "NE",
}

# ------------------------------------------------------------------------------------------------
# What respondents write
# ------------------------------------------------------------------------------------------------

COMMENTS: dict[str, dict[str, list[str]]] = {
    "vi": {
        "good": [
            "Cán bộ hướng dẫn tận tình, thủ tục nhanh gọn.",
            "Rất hài lòng, cảm ơn cán bộ đã hỗ trợ.",
            "Thời gian giải quyết nhanh hơn trước nhiều.",
            "Nhân viên lịch sự, giải thích rõ ràng.",
            "Hồ sơ được trả đúng hẹn, không phải đi lại.",
        ],
        "bad": [
            "Phải chờ quá lâu, chỉ có một quầy làm việc.",
            "Cán bộ yêu cầu bổ sung giấy tờ không có trong hướng dẫn.",
            "Hệ thống bị lỗi, phải quay lại lần sau.",
            "Thái độ phục vụ chưa niềm nở.",
            "Hướng dẫn chưa rõ, phải đi lại nhiều lần.",
            "Trả kết quả trễ hẹn mà không báo trước.",
        ],
    },
    "ru": {
        "good": [
            "Всё быстро и вежливо, спасибо.",
            "Инспектор подробно проконсультировал по заполнению декларации.",
            "Выпуск товаров в тот же день, отлично.",
            "Удобный зал ожидания, понятная электронная очередь.",
        ],
        "bad": [
            "Долго ждали в очереди, работало одно окно.",
            "Попросили документы, которых нет в перечне.",
            "Не работал терминал электронной очереди.",
            "Сотрудник ответил грубо.",
            "Информации о порядке оформления на сайте недостаточно.",
        ],
    },
    "zh": {
        "good": [
            "办事效率高，工作人员很热情。",
            "一次就办好了，不用跑第二趟。",
            "窗口人员解释很清楚，点赞！",
            "大厅环境好，指引清楚。",
        ],
        "bad": [
            "等了一个多小时，窗口太少。",
            "要求提供办事指南以外的材料。",
            "超过承诺时限还没办结。",
            "工作人员态度冷淡。",
            "网上预约系统经常出错。",
        ],
    },
    "en": {
        "good": [
            "Quick and friendly service, in and out in twenty minutes.",
            "The staff member was very helpful with my application.",
            "Clear instructions and a short wait.",
            "Great experience, thank you.",
        ],
        "bad": [
            "Waited over an hour despite having an appointment.",
            "I was told to bring a document that was not on the checklist.",
            "The kiosk kept freezing.",
            "Staff seemed rushed and unfriendly.",
            "Hard to find information about fees online.",
        ],
    },
}
CONTACT_NAMES = {"vi": "khachhang", "ru": "klient", "zh": "zhang", "en": "customer"}
CSAT_BAD = ["waiting_time", "staff_attitude", "information", "premises", "procedure_complexity", "other"]
CSAT_GOOD = ["fast_service", "staff_attitude", "information", "premises", "simple_procedure"]
HCP_BAD = [
    "over_time_limit",
    "extra_conditions",
    "extra_documents",
    "poor_attitude",
    "unclear_guidance",
    "repeated_visits",
    "other",
]
A11 = ["effectiveness", "ease", "efficiency", "transparency", "humanity", "employee"]


# ------------------------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------------------------


@dataclass
class Point:
    """A created touchpoint and what the generator needs to know about it."""

    token: str
    unit: str
    agency: Agency
    kind: str
    survey: str
    service: str | None
    weight: float
    quality: float  # share satisfied on an ordinary day
    officers: list[str]
    bad: bool = False


@dataclass(frozen=True)
class RatedCase:
    """A one-stop dossier whose applicant rated the service, on the day they did."""

    ref: str
    unit: str
    service: str
    day: date
    stage: str  # the transaction point of the rating: the dossier's intake, or its return
    late: bool


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if n < 50:
        return sum(1 for _ in range(n) if rng.random() < p)
    value = round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))
    return max(0, min(n, value))


def _token(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(9)).decode()


def _level(rng: random.Random, satisfied: float) -> int:
    """A latent level 1..5 with `satisfied` the share at 4 or 5."""
    if rng.random() < satisfied:
        return 5 if rng.random() < 0.7 else 4
    u = rng.random()
    return 3 if u < 0.45 else 2 if u < 0.75 else 1


def _near(rng: random.Random, level: int, spread: float = 0.3) -> int:
    u = rng.random()
    if u < spread / 2:
        level -= 1
    elif u < spread:
        level += 1
    return max(1, min(5, level))


def _pick(rng: random.Random, options: list[str], most: int) -> list[str]:
    return rng.sample(options, rng.randint(1, most))


def _answers(rng: random.Random, survey: str, level: int, lang: str, contact_no: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if survey == "csat":
        answers["overall"] = level
        if level <= 3:
            answers["reasons"] = _pick(rng, CSAT_BAD, 2)
        elif rng.random() < 0.45:
            answers["went_well"] = _pick(rng, CSAT_GOOD, 2)
    elif survey == "haochaping":
        answers["overall"] = level
        if rng.random() < 0.75:  # window devices show all four indicators
            answers["efficiency"] = _near(rng, level)
            answers["competence"] = _near(rng, level, 0.2)
            answers["attitude"] = _near(rng, level, 0.2)
        if level <= 2:
            answers["bad_reasons"] = _pick(rng, HCP_BAD, 2)
    elif survey == "vash_kontrol":
        keys = ("service_time", "waiting_time", "staff_courtesy", "premises", "information")
        values = [_near(rng, level, 0.35) for _ in keys]
        # Keep the criteria mean on the side of the respondent's overall verdict.
        while level >= 4 and sum(values) < 20:
            values[values.index(min(values))] += 1
        while level <= 3 and sum(values) >= 20:
            values[values.index(max(values))] -= 1
        answers.update(zip(keys, values, strict=True))
    elif survey == "vn_one_stop":
        overall = 3 if level == 5 else 2 if level == 4 else (2 if rng.random() < 0.5 else 1) if level == 3 else 1
        answers["overall"] = overall
        if rng.random() < 0.7:
            answers["on_time"] = max(1, min(3, overall + (rng.random() < 0.1) * rng.choice((-1, 1))))
            answers["officer_attitude"] = max(1, min(3, overall + (rng.random() < 0.1) * rng.choice((-1, 1))))
            answers["publicity"] = max(1, min(3, overall + (rng.random() < 0.15) * rng.choice((-1, 1))))
        if rng.random() < 0.6:
            answers["visits"] = rng.choices(("1", "2", "3_or_more"), (88, 10, 2) if overall > 1 else (30, 40, 30))[0]
            answers["agencies"] = rng.choices(("1", "2", "3_or_more"), (93, 6, 1))[0]
    elif survey == "a11_v2":
        answers["satisfaction"] = level
        if level >= 4 and rng.random() < 0.6:
            answers["went_well"] = _pick(rng, A11, 3)
        elif level <= 3 and rng.random() < 0.8:
            answers["could_be_better"] = _pick(rng, A11, 2)
    else:  # govuk
        answers["overall"] = level
    bad = level <= 3
    if rng.random() < (0.4 if bad else 0.05):
        answers["comment"] = rng.choice(COMMENTS[lang]["bad" if bad else "good"])
    if level <= 2 and survey not in ("a11_v2", "govuk") and rng.random() < 0.3:
        answers["contact"] = f"{CONTACT_NAMES[lang]}.{contact_no:05d}@example.org"
    return answers


def _case_ref(agency: Agency, service: str, local: datetime, seq: int, base: int) -> str:
    if agency.case_ref == "vn_customs":  # 12-digit declaration number: 10… imports, 30… exports
        return f"{3 if service == 'HP-XK' else 1}0{base + seq:010d}"
    if agency.case_ref == "ru_customs":  # post code / ddmmyy / number
        return f"{base:08d}/{local:%d%m%y}/{seq:07d}"
    if agency.case_ref == "vn_dossier":  # dossier code: agency code - yymmdd - number
        return f"{agency.dossier_prefix}-{local:%y%m%d}-{seq:04d}"
    return f"450000-{local:%Y%m%d}-{seq:06d}"  # 办件编号: region code - date - number


def _create_organisation(
    conn: sqlite3.Connection, rng: random.Random, plugins: PluginManager
) -> tuple[list[Point], dict[str, Agency]]:
    for slug in SURVEYS:
        publish_template(conn, slug, plugins)
    points: list[Point] = []
    unit_agency: dict[str, Agency] = {}
    for agency in AGENCIES:
        for spec in agency.units:
            add_unit(conn, spec.code, spec.name, parent=spec.parent, lang=agency.lang, tz=agency.tz, names=spec.names)
            unit_agency[spec.code] = agency
        for code, names in agency.services:
            add_service(conn, code, names[agency.lang], kind=agency.service_kind, agency=agency.code, names=names)
        for spec in agency.units:
            for tp in spec.touchpoints:
                survey = tp.survey or agency.survey
                token = add_touchpoint(
                    conn,
                    spec.code,
                    tp.name,
                    survey,
                    kind=tp.kind,
                    counter=tp.counter,
                    service=tp.service,
                    token=_token(rng),
                )
                officers = (
                    [f"{OFFICER_PREFIX[spec.code]}-{rng.randrange(100, 1000)}" for _ in range(3)] if tp.counter else []
                )
                points.append(
                    Point(
                        token=token,
                        unit=spec.code,
                        agency=agency,
                        kind=tp.kind,
                        survey=survey,
                        service=tp.service,
                        weight=tp.weight,
                        quality=rng.uniform(0.9, 0.97),
                        officers=officers,
                        bad=(spec.code, tp.counter) == (BAD_UNIT, BAD_COUNTER),
                    )
                )
        email = f"{agency.manager}@example.org"
        save_user(conn, agency.manager, "manager", agency.code, email=email, lang=agency.lang)
        country, action_days = JURISDICTION[agency.code]
        for spec in agency.units:
            owner = agency.manager if spec.parent is None else f"{spec.code.lower()}.lead"
            if owner != agency.manager:
                save_user(conn, owner, "manager", spec.code, email=f"{owner}@example.org", lang=agency.lang)
            update_unit_settings(conn, spec.code, {"country": country, "owner": owner, "action_days": action_days})
    ensure_user(conn, "admin", "admin", None, "admin@example.org")
    return points, unit_agency


def _create_objectives(conn: sqlite3.Connection, since: date, plugins: PluginManager) -> int:
    from feedback.objectives import create_objective

    for unit, spec in OBJECTIVES:
        owner = organisation_store.unit_owner(conn, unit)
        spec = {"owner": owner, "valid_from": since.isoformat(), **spec}
        create_objective(conn, unit, spec, actor="admin", today=since, plugins=plugins)
    return len(OBJECTIVES)


def _dossiers(cases: list[RatedCase], rng: random.Random, today: date) -> list[Dossier]:
    """The one-stop dossiers behind the rated ones, and those handled beside them: received some days
    before their return, due DUE_DAYS after receipt, a few returned late and fewer still open past due."""
    yesterday = today - timedelta(days=1)
    found = []
    for case in cases:
        head, _, seq = case.ref.rpartition("-")
        for copy in range(UNRATED_PER_RATED + 1):
            ref = case.ref if copy == 0 else f"{head}-{int(seq) + 5000 * copy:04d}"
            late = case.late if copy == 0 else rng.random() < LATE_SHARE
            channel = "online" if rng.random() < 0.35 else "offline"
            if case.stage == "intake" and copy == 0:  # rated when handed in: returned later, or still open
                returned = case.day + timedelta(days=rng.randint(3, 9))
                done = returned if returned <= yesterday else None
                received, due = case.day, case.day + timedelta(days=DUE_DAYS)
            elif late and copy and rng.random() < 0.3:  # still open, past its due day
                received, due, done = case.day - timedelta(days=DUE_DAYS + 3), case.day - timedelta(days=3), None
            else:
                received = case.day - timedelta(days=rng.randint(3, 9))
                due = case.day - timedelta(days=rng.randint(1, 3)) if late else received + timedelta(days=DUE_DAYS)
                done = case.day
            found.append(
                Dossier(
                    ref=ref,
                    unit=case.unit,
                    service=case.service,
                    received=received.isoformat(),
                    due=due.isoformat(),
                    returned=done.isoformat() if done else None,
                    status="returned" if done else "open",
                    channel=channel,
                )
            )
    return found


def _indicator_figures(rng: random.Random, since: date, today: date) -> list[Figure]:
    """A figure of every INDICATOR_FIGURES row for each month of the history (the running one so far)."""
    figures = []
    month = date(since.year, since.month, 1)
    while month < today:
        key = f"{month.year}-{month.month:02d}"
        for unit, indicator, denominator, share in INDICATOR_FIGURES:
            _, first, last = period_bounds(key, "period")
            n = max(1, round(denominator * rng.uniform(0.85, 1.15)))
            figures.append(Figure(indicator, unit, key, first, last, _binomial(rng, n, share), n))
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return figures


# Who signs in to /manage/ on the demo: the installation's admin, and the manager of the unit whose
# objective the bad fortnight breached (its nonconformity waits in that manager's queue).
SIGN_IN_USERS = (("admin", "admin", None), (f"{BAD_UNIT.lower()}.lead", "manager", BAD_UNIT))


def sign_in_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Give the demo's admin and one unit manager fresh random passwords (argon2id hashes are kept);
    returns `[{"user", "password", "role", "unit"}]` for the summary, the only place they are shown."""
    found = []
    for user, role, unit in SIGN_IN_USERS:
        password = secrets.token_urlsafe(12)  # never seeded: the demo's data is deterministic, its keys are not
        save_user(conn, user, role, unit, password=password)
        found.append({"user": user, "password": password, "role": role, "unit": unit})
    return found


def _begin(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # a legacy-mode connection may hold an implicit transaction
        conn.execute("COMMIT")
    conn.execute("BEGIN")


def build_demo(
    db: sqlite_utils.Database, days: int = 90, seed: int = 2024, today: date | None = None, *, plugins: PluginManager
) -> dict:
    """Create the demo organisations and `days` days of history ending yesterday; returns a summary.

    Its surveys are the presets `plugins` register, and they score its responses."""
    today = today or date.today()
    rng = random.Random(seed)
    conn = db.conn
    row_factory = conn.row_factory
    conn.row_factory = sqlite3.Row  # the catalog and the writer read rows by column name
    try:
        _begin(conn)
        try:
            points, unit_agency = _create_organisation(conn, rng, plugins)
            _create_objectives(conn, today - timedelta(days=days), plugins)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        snapshot = load_snapshot(conn, plugins)
        # A generator of its own for dossiers and figures, so the ratings' history stays as it was.
        records_rng = random.Random(f"records-{seed}")
        cases: list[RatedCase] = []
        _history(conn, rng, records_rng, cases, snapshot, points, unit_agency, days, today, plugins)
        _begin(conn)
        dossiers.store_batch(conn, snapshot, _dossiers(cases, records_rng, today), source="demo")
        indicators.store_figures(conn, _indicator_figures(records_rng, today - timedelta(days=days), today), "demo")
        conn.execute("COMMIT")
        # The history's events are not news: nothing is sent about them.
        _begin(conn)
        event_store.mark_all_dispatched(conn, stamp(datetime.now(UTC)))
        conn.execute("COMMIT")
        return {
            **organisation_store.counts(conn),
            "responses": response_store.count_all(conn),
            "days": days,
            "roots": [a.code for a in AGENCIES],
            "bad_fortnight_touchpoint": next(p.token for p in points if p.bad),
        }
    finally:
        conn.row_factory = row_factory


def _history(
    conn: sqlite3.Connection,
    rng: random.Random,
    records_rng: random.Random,
    cases: list[RatedCase],
    snapshot,
    points: list[Point],
    unit_agency: dict[str, Agency],
    days: int,
    today: date,
    plugins: PluginManager,
) -> None:
    specs = [spec for agency in AGENCIES for spec in agency.units if spec.traffic]
    by_unit: dict[str, list[Point]] = {}
    for point in points:
        by_unit.setdefault(point.unit, []).append(point)
    # The touchpoints that can take each (unit, service), with their weights.
    candidates: dict[tuple[str, str], tuple[list[Point], list[float]]] = {}
    for spec in specs:
        for service in spec.traffic:
            chosen = [p for p in by_unit[spec.code] if p.service in (None, service)]
            if not chosen:
                raise ValueError(f"demo: no touchpoint takes {service} at {spec.code}")
            candidates[(spec.code, service)] = (chosen, [p.weight for p in chosen])
    zones = {agency.code: ZoneInfo(agency.tz) for agency in AGENCIES}
    hour_weights = {lang: list(profile) for lang, profile in HOUR_PROFILE.items()}
    case_base = {spec.code: rng.randrange(10**8, 6 * 10**8) * 10 for spec in specs}
    ru_posts = {"SAK-YS": 10707090, "SAK-KOR": 10707030}
    sequences: dict[tuple[str, Any], int] = {}
    contact_no = 0
    pending = 0

    progress = Progress(
        TextColumn("[bold]demo history"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TextColumn("{task.fields[responses]} responses"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    stored = 0
    _begin(conn)
    try:
        # As in a group commit, a day's responses add to each rollup row once; what is held is written
        # before each commit (and by an opening action's baseline, when it holds a day the baseline reads).
        with progress, holding_deferred() as write_held:
            task = progress.add_task("history", total=days, responses=0)
            for ago in range(days, 0, -1):
                day = today - timedelta(days=ago)
                weekday = WEEKDAY[day.weekday()]
                growth = 0.92 + 0.16 * (days - ago) / max(days, 1)  # QR codes catch on over the period
                events: list[tuple[datetime, datetime, Point, str]] = []
                for spec in specs:
                    agency = unit_agency[spec.code]
                    zone = zones[agency.code]
                    for service, base in spec.traffic.items():
                        mean = base * weekday * growth * rng.lognormvariate(0, 0.18)
                        served = _binomial(rng, int(mean * 3) + 3, mean / (int(mean * 3) + 3))
                        offered = _binomial(rng, served, spec.offered)
                        answered = _binomial(rng, offered, spec.rate)
                        set_exposure(conn, spec.code, service, day.isoformat(), served, offered, source="demo")
                        chosen, weights = candidates[(spec.code, service)]
                        for _ in range(answered):
                            point = rng.choices(chosen, weights)[0]
                            hour = rng.choices(HOURS, hour_weights[agency.lang])[0]
                            local = datetime(
                                day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=zone
                            )
                            events.append((local.astimezone(UTC), local, point, service))
                events.sort(key=lambda event: event[0])
                for utc, local, point, service in events:
                    agency = point.agency
                    satisfied = point.quality
                    if point.bad and BAD_TO <= ago <= BAD_FROM:
                        satisfied = BAD_SATISFIED
                    if day.weekday() == 0 or local.hour in (14, 15):
                        satisfied -= 0.015  # queues at the peaks
                    transaction_point = "completion"
                    if agency.case_ref == "vn_dossier":
                        transaction_point = rng.choices(
                            ("completion", "intake", "supplement_request", "refusal"), (78, 14, 5, 3)
                        )[0]
                        if transaction_point in ("supplement_request", "refusal"):
                            satisfied -= 0.25
                    elif rng.random() < 0.04:
                        transaction_point = "post_service"
                    # A dossier returned late: its applicant is less satisfied (the unit page compares them).
                    late = agency.case_ref == "vn_dossier" and records_rng.random() < LATE_SHARE
                    if late and transaction_point != "intake":
                        satisfied -= LATE_PENALTY
                    lang = snapshot.touchpoints[point.token].lang
                    u = rng.random()
                    for other, share in agency.other_langs.items():
                        if u < share:
                            lang = other
                            break
                        u -= share
                    level = _level(rng, satisfied)
                    if level <= 2:
                        contact_no += 1
                    answers = _answers(rng, point.survey, level, lang, contact_no)
                    case_ref = None
                    if rng.random() < agency.case_share:
                        key = (point.unit, day if agency.case_ref != "vn_customs" else None)
                        sequences[key] = sequences.get(key, 0) + 1
                        base = ru_posts.get(point.unit, 0) if agency.case_ref == "ru_customs" else case_base[point.unit]
                        case_ref = _case_ref(agency, service, local, sequences[key], base)
                        if agency.case_ref == "vn_dossier":
                            stage = "intake" if transaction_point == "intake" else "return"
                            late = late and stage == "return"
                            cases.append(RatedCase(case_ref, point.unit, service, day, stage, late))
                    officer = rng.choice(point.officers) if point.officers and rng.random() < 0.85 else None
                    submission = Submission(
                        touchpoint=point.token,
                        answers=answers,
                        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        channel=point.kind,
                        transaction_point=transaction_point,
                        submitted_at=local.isoformat(),
                        service=service,
                        case_ref=case_ref,
                        officer=officer,
                        lang=lang,
                    )
                    # The demo's case references come from the counters' systems (signed links, invitations).
                    prepared = prepare(submission, snapshot, plugins=plugins, now=utc, case_verified=True)
                    if ago > ACTIONS_FROM:
                        prepared.requests = []  # before the system ran: no corrective-action queue yet
                    result, _row = store_job(prepared)(conn)
                    stored += result.created
                    pending += 1
                if pending >= COMMIT_EVERY:
                    write_held(conn)
                    conn.execute("COMMIT")
                    conn.execute("BEGIN")
                    pending = 0
                progress.update(task, advance=1, responses=stored)
            write_held(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
