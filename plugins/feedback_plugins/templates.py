"""Built-in survey templates: generic CSAT and the public-sector rating systems already in force.

- `csat`: a five-face satisfaction rating with reasons, a comment and an optional contact.
- `haochaping`: China's 政务服务"好差评" (GB/T 39734-2020); levels 2 and 1 are a bad review.
- `vash_kontrol`: Russia's «Ваш контроль» (Decree No. 1284): five criteria on a five-point scale.
- `vn_one_stop`: Vietnam's one-stop sections (Decree 61/2018, Decision 766): three-level ratings.
- `a11_v2`: US OMB Circular A-11 §280, "A-11 v2" (GSA Touchpoints).
- `govuk`: GOV.UK's single satisfaction question plus free text (at most 1,200 characters).

Every text carries Vietnamese, Russian, Simplified Chinese and English. Question and option keys
are stable: responses and trends refer to them across survey versions.
"""

from feedback import hookimpl
from feedback.models import (
    ChoiceQuestion,
    ContactQuestion,
    Option,
    RatingQuestion,
    ShowIf,
    SurveyDefinition,
    TextQuestion,
)

LANGS = ["vi", "ru", "zh", "en"]


def _t(vi: str, ru: str, zh: str, en: str) -> dict[str, str]:
    return {"vi": vi, "ru": ru, "zh": zh, "en": en}


def _labels(vi: list[str], ru: list[str], zh: list[str], en: list[str]) -> dict[str, list[str]]:
    """Labels per language, answer 1 first (the worst) up to answer `scale` (the best)."""
    return {"vi": list(vi), "ru": list(ru), "zh": list(zh), "en": list(en)}


def _options(*items: tuple[str, dict[str, str]]) -> list[Option]:
    return [Option(key=key, text=dict(text)) for key, text in items]


# Shared pieces are built by functions so that no two templates share a mutable dict.


def _satisfaction_labels(neutral: dict[str, str]) -> dict[str, list[str]]:
    return _labels(
        ["Rất không hài lòng", "Không hài lòng", neutral["vi"], "Hài lòng", "Rất hài lòng"],
        ["Очень недовольны", "Недовольны", neutral["ru"], "Довольны", "Очень довольны"],
        ["非常不满意", "不满意", neutral["zh"], "满意", "非常满意"],
        ["Very dissatisfied", "Dissatisfied", neutral["en"], "Satisfied", "Very satisfied"],
    )


def _other() -> tuple[str, dict[str, str]]:
    return ("other", _t("Khác", "Другое", "其他", "Other"))


def _comment(max_length: int = 1200) -> TextQuestion:
    return TextQuestion(
        key="comment",
        text=_t(
            "Ông/Bà có góp ý gì thêm không?",
            "Хотите что-нибудь добавить?",
            "您还有其他意见或建议吗？",
            "Is there anything else you would like to tell us?",
        ),
        max_length=max_length,
    )


def _contact() -> ContactQuestion:
    return ContactQuestion(
        key="contact",
        text=_t(
            "Số điện thoại hoặc email để liên hệ (không bắt buộc)",
            "Телефон или электронная почта для связи (необязательно)",
            "联系电话或电子邮箱（选填）",
            "Phone number or email address (optional)",
        ),
        consent_text=_t(
            "Tôi đồng ý được liên hệ về góp ý này",
            "Я даю согласие на то, чтобы со мной связались по поводу этого отзыва",
            "我同意就本次评价与我联系",
            "I agree to be contacted about this feedback",
        ),
    )


# --------------------------------------------------------------------------------------------
# csat: generic five-face customer satisfaction
# --------------------------------------------------------------------------------------------

CSAT = SurveyDefinition(
    slug="csat",
    title=_t(
        "Khảo sát mức độ hài lòng",
        "Оценка удовлетворённости",
        "满意度评价",
        "Customer satisfaction",
    ),
    description=_t(
        "Đánh giá mức độ hài lòng 5 mức, kèm lý do, góp ý và thông tin liên hệ nếu muốn.",
        "Оценка удовлетворённости по пятиуровневой шкале с причинами, комментарием и контактом по желанию.",
        "五级满意度评价，附原因、意见建议和可选的联系方式。",
        "A five-level satisfaction rating with reasons, a comment and an optional contact.",
    ),
    languages=list(LANGS),
    scoring="csat",
    questions=[
        RatingQuestion(
            key="overall",
            text=_t(
                "Nhìn chung, Ông/Bà hài lòng như thế nào với dịch vụ hôm nay?",
                "Насколько вы в целом довольны обслуживанием сегодня?",
                "总体而言，您对今天的服务满意吗？",
                "Overall, how satisfied are you with the service today?",
            ),
            required=True,
            indicator="overall",
            scale=5,
            style="faces",
            primary=True,
            labels=_satisfaction_labels(_t("Bình thường", "Нейтрально", "一般", "Neutral")),
        ),
        ChoiceQuestion(
            key="reasons",
            text=_t(
                "Điều gì khiến Ông/Bà chưa hài lòng?",
                "Что вас не устроило?",
                "您对哪些方面不满意？",
                "What were you unhappy with?",
            ),
            show_if=ShowIf(question="overall", max=3),
            multiple=True,
            options=_options(
                (
                    "waiting_time",
                    _t("Thời gian chờ đợi lâu", "Долгое ожидание", "等候时间过长", "Long waiting time"),
                ),
                (
                    "staff_attitude",
                    _t("Thái độ của cán bộ", "Отношение сотрудников", "工作人员态度", "Staff attitude"),
                ),
                (
                    "information",
                    _t(
                        "Thông tin, hướng dẫn chưa rõ ràng",
                        "Непонятная информация или разъяснения",
                        "信息或指引不清楚",
                        "Unclear information or guidance",
                    ),
                ),
                (
                    "premises",
                    _t(
                        "Cơ sở vật chất, nơi chờ",
                        "Условия в помещении",
                        "场所与设施",
                        "Premises and facilities",
                    ),
                ),
                (
                    "procedure_complexity",
                    _t(
                        "Thủ tục phức tạp",
                        "Сложная процедура",
                        "办事流程复杂",
                        "Complicated procedure",
                    ),
                ),
                _other(),
            ),
        ),
        ChoiceQuestion(
            key="went_well",
            text=_t(
                "Ông/Bà hài lòng nhất với điều gì?",
                "Что вам понравилось больше всего?",
                "您最满意的是哪些方面？",
                "What did you like most?",
            ),
            show_if=ShowIf(question="overall", min=4),
            multiple=True,
            options=_options(
                (
                    "fast_service",
                    _t("Được phục vụ nhanh", "Быстрое обслуживание", "办理快捷", "Quick service"),
                ),
                (
                    "staff_attitude",
                    _t(
                        "Cán bộ nhiệt tình, lịch sự",
                        "Вежливые и внимательные сотрудники",
                        "工作人员热情有礼",
                        "Friendly, courteous staff",
                    ),
                ),
                (
                    "information",
                    _t(
                        "Thông tin, hướng dẫn rõ ràng",
                        "Понятная информация и разъяснения",
                        "信息和指引清楚",
                        "Clear information and guidance",
                    ),
                ),
                (
                    "premises",
                    _t(
                        "Cơ sở vật chất tốt",
                        "Удобное помещение",
                        "场所舒适便利",
                        "Comfortable premises",
                    ),
                ),
                (
                    "simple_procedure",
                    _t("Thủ tục đơn giản", "Простая процедура", "流程简便", "Simple procedure"),
                ),
                _other(),
            ),
        ),
        _comment(),
        _contact(),
    ],
)


# --------------------------------------------------------------------------------------------
# haochaping: China, 政务服务"好差评" (国办发〔2019〕51号, GB/T 39734-2020)
# --------------------------------------------------------------------------------------------


def _haochaping_labels() -> dict[str, list[str]]:
    return _satisfaction_labels(_t("Cơ bản hài lòng", "В основном довольны", "基本满意", "Basically satisfied"))


HAOCHAPING = SurveyDefinition(
    slug="haochaping",
    title=_t(
        "Đánh giá dịch vụ hành chính công “Tốt – Kém” (Trung Quốc)",
        "Оценка госуслуг «хорошо — плохо» (Китай)",
        "政务服务“好差评”",
        "Government service good/bad review (China)",
    ),
    description=_t(
        "Theo GB/T 39734-2020: đánh giá 5 mức; mức 1 và 2 là đánh giá kém, được gọi lại nếu đánh giá có danh tính.",
        "По стандарту GB/T 39734-2020: пять уровней; оценки 1 и 2 — плохой отзыв, по именным "
        "отзывам проводится обратный звонок.",
        "依据GB/T 39734-2020：五级评价，1级和2级为差评，实名差评100%回访。",
        "Per GB/T 39734-2020: five levels; 1 and 2 are a bad review, and every real-name bad review is called back.",
    ),
    languages=list(LANGS),
    scoring="csat",
    questions=[
        RatingQuestion(
            key="overall",
            text=_t(
                "Ông/Bà đánh giá chung thế nào về lần giải quyết công việc này?",
                "Как вы в целом оцениваете это обслуживание?",
                "您对本次办事服务的总体评价是？",
                "How do you rate this service overall?",
            ),
            required=True,
            indicator="overall",
            scale=5,
            style="faces",
            primary=True,
            labels=_haochaping_labels(),
        ),
        RatingQuestion(
            key="efficiency",
            text=_t(
                "Ông/Bà đánh giá thế nào về hiệu quả, tốc độ giải quyết?",
                "Как вы оцениваете оперативность обслуживания?",
                "您对办事效率的评价是？",
                "How do you rate the efficiency of the service?",
            ),
            indicator="efficiency",
            scale=5,
            style="faces",
            labels=_haochaping_labels(),
        ),
        RatingQuestion(
            key="competence",
            text=_t(
                "Ông/Bà đánh giá thế nào về năng lực chuyên môn của cán bộ?",
                "Как вы оцениваете профессионализм сотрудника?",
                "您对工作人员业务能力的评价是？",
                "How do you rate the staff member's competence?",
            ),
            indicator="staff_competence",
            scale=5,
            style="faces",
            labels=_haochaping_labels(),
        ),
        RatingQuestion(
            key="attitude",
            text=_t(
                "Ông/Bà đánh giá thế nào về thái độ phục vụ của cán bộ?",
                "Как вы оцениваете отношение к вам со стороны сотрудника?",
                "您对工作人员服务态度的评价是？",
                "How do you rate the staff member's attitude?",
            ),
            indicator="staff_courtesy",
            scale=5,
            style="faces",
            labels=_haochaping_labels(),
        ),
        ChoiceQuestion(
            key="bad_reasons",
            text=_t(
                "Vì sao Ông/Bà không hài lòng?",
                "Почему вы поставили низкую оценку?",
                "请选择差评原因",
                "Why are you dissatisfied?",
            ),
            show_if=ShowIf(question="overall", max=2),
            multiple=True,
            options=_options(
                (
                    "over_time_limit",
                    _t(
                        "Giải quyết quá thời hạn luật định",
                        "Превышен установленный законом срок",
                        "超过法定办理时限",
                        "Over the statutory time limit",
                    ),
                ),
                (
                    "extra_conditions",
                    _t(
                        "Đặt thêm điều kiện ngoài hướng dẫn đã công bố",
                        "Поставлены условия сверх опубликованного порядка",
                        "在办事指南之外增设条件",
                        "Conditions added beyond the published guide",
                    ),
                ),
                (
                    "extra_documents",
                    _t(
                        "Yêu cầu thêm giấy tờ ngoài hướng dẫn",
                        "Потребовали документы сверх указанных в порядке",
                        "要求提供办事指南之外的材料",
                        "Documents demanded beyond the guide",
                    ),
                ),
                (
                    "poor_attitude",
                    _t(
                        "Thái độ phục vụ kém",
                        "Невежливое обслуживание",
                        "服务态度差",
                        "Poor staff attitude",
                    ),
                ),
                (
                    "unclear_guidance",
                    _t(
                        "Hướng dẫn không rõ ràng",
                        "Неясные разъяснения",
                        "告知指引不清楚",
                        "Unclear guidance",
                    ),
                ),
                (
                    "repeated_visits",
                    _t(
                        "Phải đi lại nhiều lần",
                        "Пришлось приходить несколько раз",
                        "需要多次往返",
                        "Had to come back several times",
                    ),
                ),
                _other(),
            ),
        ),
        _comment(),
        ContactQuestion(
            key="contact",
            text=_t(
                "Họ tên và số điện thoại (đánh giá có danh tính, không bắt buộc)",
                "Имя и телефон (именной отзыв, необязательно)",
                "姓名及联系电话（实名评价，选填）",
                "Your name and phone number (real-name review, optional)",
            ),
            consent_text=_t(
                "Tôi đánh giá bằng tên thật và đồng ý được gọi lại về đánh giá này",
                "Я оставляю отзыв под своим именем и даю согласие на обратный звонок по нему",
                "我愿意实名评价，并同意工作人员就本次评价回访我",
                "I give this review under my real name and agree to be called back about it",
            ),
        ),
    ],
)


# --------------------------------------------------------------------------------------------
# vash_kontrol: Russia, «Ваш контроль» (Government Decree No. 1284 of 2012)
# --------------------------------------------------------------------------------------------


def _stars_labels() -> dict[str, list[str]]:
    return _labels(
        ["Rất kém", "Kém", "Trung bình", "Tốt", "Rất tốt"],
        ["Очень плохо", "Плохо", "Удовлетворительно", "Хорошо", "Отлично"],
        ["很差", "差", "一般", "好", "很好"],
        ["Very poor", "Poor", "Fair", "Good", "Excellent"],
    )


def _criterion(key: str, text: dict[str, str]) -> RatingQuestion:
    return RatingQuestion(
        key=key,
        text=text,
        required=True,
        indicator=key,
        scale=5,
        style="stars",
        labels=_stars_labels(),
    )


VASH_KONTROL = SurveyDefinition(
    slug="vash_kontrol",
    title=_t(
        "Đánh giá chất lượng dịch vụ công “Ваш контроль” (Nga)",
        "«Ваш контроль»: оценка качества государственных услуг",
        "俄罗斯“您的监督”（Ваш контроль）政务服务质量评价",
        "Russia's “Your Control” (Ваш контроль) public service rating",
    ),
    description=_t(
        "Theo Nghị định số 1284 của Chính phủ Nga: năm tiêu chí, mỗi tiêu chí chấm theo thang 5 điểm.",
        "По постановлению Правительства РФ № 1284: пять критериев, каждый по пятибалльной шкале.",
        "依据俄罗斯联邦政府第1284号决议：五项指标，每项按五分制评价。",
        "Per Russian Government Decree No. 1284: five criteria, each on a five-point scale.",
    ),
    languages=list(LANGS),
    scoring="criteria_mean",
    questions=[
        _criterion(
            "service_time",
            _t(
                "Thời gian giải quyết dịch vụ",
                "Время предоставления услуги",
                "服务办理时长",
                "Time taken to deliver the service",
            ),
        ),
        _criterion(
            "waiting_time",
            _t(
                "Thời gian chờ đợi khi xếp hàng",
                "Время ожидания в очереди",
                "排队等候时间",
                "Waiting time in the queue",
            ),
        ),
        _criterion(
            "staff_courtesy",
            _t(
                "Sự lịch sự và năng lực của cán bộ",
                "Вежливость и компетентность сотрудника",
                "工作人员的礼貌与业务能力",
                "Politeness and competence of the staff member",
            ),
        ),
        _criterion(
            "premises",
            _t(
                "Mức độ tiện nghi của nơi tiếp nhận",
                "Комфортность условий в помещении",
                "办事场所的舒适程度",
                "Comfort of the premises",
            ),
        ),
        _criterion(
            "information",
            _t(
                "Mức độ dễ tiếp cận thông tin về thủ tục",
                "Доступность информации о порядке предоставления услуги",
                "办事程序信息的易获取程度",
                "Availability of information about the procedure",
            ),
        ),
        _comment(),
        _contact(),
    ],
)


# --------------------------------------------------------------------------------------------
# vn_one_stop: Vietnam one-stop sections (Decree 61/2018/NĐ-CP, Decision 766/QĐ-TTg)
# --------------------------------------------------------------------------------------------

# Three answers mapped onto the common 1..5 level and 0..100; "dissatisfied" is level 1, so a
# Decision 766 "not rated dissatisfied" ratio is the share of cases above level 2.
VN_LEVELS = [1, 4, 5]
VN_SCORES = [0.0, 75.0, 100.0]


def _vn_rating(key: str, indicator: str, text: dict[str, str], **kwargs) -> RatingQuestion:
    return RatingQuestion(
        key=key,
        text=text,
        indicator=indicator,
        scale=3,
        style="faces",
        labels=_labels(
            ["Không hài lòng", "Hài lòng", "Rất hài lòng"],
            ["Недовольны", "Довольны", "Очень довольны"],
            ["不满意", "满意", "非常满意"],
            ["Dissatisfied", "Satisfied", "Very satisfied"],
        ),
        levels=list(VN_LEVELS),
        scores=list(VN_SCORES),
        **kwargs,
    )


VN_ONE_STOP = SurveyDefinition(
    slug="vn_one_stop",
    title=_t(
        "Đánh giá việc giải quyết thủ tục hành chính tại Bộ phận Một cửa",
        "Оценка обслуживания в «едином окне» (Вьетнам)",
        "越南“一站式”窗口办事评价",
        "Vietnam one-stop shop service rating",
    ),
    description=_t(
        "Theo Nghị định 61/2018/NĐ-CP và Quyết định 766/QĐ-TTg: đánh giá 3 mức theo mã hồ sơ.",
        "По Постановлению 61/2018/NĐ-CP и Решению 766/QĐ-TTg: трёхуровневая оценка по номеру дела.",
        "依据第61/2018/NĐ-CP号议定和第766/QĐ-TTg号决定：按档案编号进行三级评价。",
        "Per Decree 61/2018/NĐ-CP and Decision 766/QĐ-TTg: three-level ratings against the dossier code.",
    ),
    languages=list(LANGS),
    scoring="csat",
    questions=[
        _vn_rating(
            "overall",
            "overall",
            _t(
                "Nhìn chung, Ông/Bà đánh giá thế nào về việc giải quyết hồ sơ của mình?",
                "Как вы в целом оцениваете рассмотрение вашего дела?",
                "总体而言，您对本次办件的评价是？",
                "Overall, how satisfied are you with how your dossier was handled?",
            ),
            required=True,
            primary=True,
        ),
        _vn_rating(
            "on_time",
            "on_time",
            _t(
                "Ông/Bà đánh giá thế nào về việc trả kết quả đúng hẹn?",
                "Как вы оцениваете соблюдение срока выдачи результата?",
                "您对按时办结情况的评价是？",
                "How satisfied are you with getting the result on time?",
            ),
        ),
        _vn_rating(
            "officer_attitude",
            "staff_courtesy",
            _t(
                "Ông/Bà đánh giá thế nào về thái độ của công chức (không gây phiền hà, sách nhiễu)?",
                "Как вы оцениваете отношение сотрудника (без волокиты и вымогательства)?",
                "您对工作人员态度的评价是（有无刁难、推诿）？",
                "How satisfied are you with the officer's attitude (no harassment or obstruction)?",
            ),
        ),
        ChoiceQuestion(
            key="visits",
            text=_t(
                "Ông/Bà đã phải đến bao nhiêu lần để giải quyết hồ sơ này?",
                "Сколько раз вам пришлось прийти по этому делу?",
                "您为办理此事共来了几次？",
                "How many times did you have to come in for this dossier?",
            ),
            indicator="visits",
            options=_options(
                ("1", _t("1 lần", "1 раз", "1次", "Once")),
                ("2", _t("2 lần", "2 раза", "2次", "Twice")),
                ("3_or_more", _t("3 lần trở lên", "3 раза и более", "3次及以上", "3 times or more")),
            ),
        ),
        ChoiceQuestion(
            key="agencies",
            text=_t(
                "Ông/Bà đã phải liên hệ với bao nhiêu cơ quan?",
                "Во сколько ведомств вам пришлось обратиться?",
                "您共联系了几个部门？",
                "How many agencies did you have to contact?",
            ),
            indicator="agencies",
            options=_options(
                ("1", _t("1 cơ quan", "Одно", "1个", "One")),
                ("2", _t("2 cơ quan", "Два", "2个", "Two")),
                ("3_or_more", _t("3 cơ quan trở lên", "Три и более", "3个及以上", "Three or more")),
            ),
        ),
        _vn_rating(
            "publicity",
            "information",
            _t(
                "Ông/Bà đánh giá thế nào về việc công khai thủ tục hành chính?",
                "Как вы оцениваете открытость информации о процедуре?",
                "您对办事程序公开情况的评价是？",
                "How satisfied are you with how openly the procedure is published?",
            ),
        ),
        _comment(),
        _contact(),
    ],
)


# --------------------------------------------------------------------------------------------
# a11_v2: US OMB Circular A-11 §280, "A-11 v2" (GSA Touchpoints)
# --------------------------------------------------------------------------------------------


def _a11_options() -> list[Option]:
    return _options(
        ("effectiveness", _t("Hiệu quả", "Результативность", "办事成效", "Effectiveness")),
        ("ease", _t("Dễ thực hiện", "Простота", "便捷程度", "Ease")),
        ("efficiency", _t("Nhanh chóng", "Скорость", "办理效率", "Efficiency")),
        ("transparency", _t("Minh bạch", "Прозрачность", "公开透明", "Transparency")),
        (
            "humanity",
            _t("Được đối xử tôn trọng", "Уважительное отношение", "受到尊重", "Humanity"),
        ),
        (
            "employee",
            _t("Sự hỗ trợ của nhân viên", "Помощь сотрудников", "工作人员的帮助", "Employee helpfulness"),
        ),
        _other(),
    )


A11_V2 = SurveyDefinition(
    slug="a11_v2",
    title=_t(
        "Trải nghiệm khách hàng (OMB A-11 §280 phiên bản 2, Hoa Kỳ)",
        "Клиентский опыт (OMB A-11 §280, версия 2, США)",
        "客户体验（美国OMB A-11第280节第2版）",
        "Customer experience (OMB A-11 §280 v2, US)",
    ),
    description=_t(
        "Khảo sát sau giao dịch của Chính phủ liên bang Hoa Kỳ (GSA Touchpoints): mức độ hài lòng, "
        "điều đã làm tốt và điều cần cải thiện.",
        "Опрос после обращения, принятый в федеральных ведомствах США (GSA Touchpoints): "
        "удовлетворённость, что было хорошо и что можно улучшить.",
        "美国联邦政府办事后调查（GSA Touchpoints）：满意度、做得好的方面和有待改进的方面。",
        "The US federal post-transaction survey (GSA Touchpoints): satisfaction, what went well and "
        "what could be better.",
    ),
    languages=list(LANGS),
    scoring="csat",
    questions=[
        RatingQuestion(
            key="satisfaction",
            text=_t(
                "Tôi hài lòng với dịch vụ mà tôi đã nhận được.",
                "Полученное обслуживание меня устраивает.",
                "我对所获得的服务感到满意。",
                "I am satisfied with the service I received.",
            ),
            required=True,
            indicator="overall",
            scale=5,
            style="numbers",
            primary=True,
            labels=_labels(
                ["Hoàn toàn không đồng ý", "Không đồng ý", "Trung lập", "Đồng ý", "Hoàn toàn đồng ý"],
                ["Совершенно не согласен", "Не согласен", "Нейтрально", "Согласен", "Полностью согласен"],
                ["非常不同意", "不同意", "中立", "同意", "非常同意"],
                ["Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"],
            ),
        ),
        ChoiceQuestion(
            key="went_well",
            text=_t(
                "Những điểm nào đã làm tốt?",
                "Что было хорошо?",
                "哪些方面做得好？",
                "What went well?",
            ),
            show_if=ShowIf(question="satisfaction", min=4),
            multiple=True,
            options=_a11_options(),
        ),
        ChoiceQuestion(
            key="could_be_better",
            text=_t(
                "Những điểm nào cần cải thiện?",
                "Что можно улучшить?",
                "哪些方面有待改进？",
                "What could be better?",
            ),
            show_if=ShowIf(question="satisfaction", max=3),
            multiple=True,
            options=_a11_options(),
        ),
        _comment(),
    ],
)


# --------------------------------------------------------------------------------------------
# govuk: GOV.UK, one satisfaction question plus free text
# --------------------------------------------------------------------------------------------

GOVUK = SurveyDefinition(
    slug="govuk",
    title=_t(
        "Khảo sát mức độ hài lòng theo mẫu GOV.UK",
        "Опрос удовлетворённости по образцу GOV.UK",
        "GOV.UK式满意度调查",
        "GOV.UK satisfaction survey",
    ),
    description=_t(
        "Một câu hỏi về mức độ hài lòng và ô góp ý, hỏi ở mọi điểm kết thúc của dịch vụ.",
        "Один вопрос об удовлетворённости и поле для комментария на каждом завершающем этапе услуги.",
        "一道满意度问题加自由填写意见，在服务的每个结束环节询问。",
        "One satisfaction question and free text, asked at every end point of a service.",
    ),
    languages=list(LANGS),
    scoring="csat",
    questions=[
        RatingQuestion(
            key="overall",
            text=_t(
                "Nhìn chung, Ông/Bà cảm thấy thế nào về dịch vụ đã nhận được hôm nay?",
                "В целом, насколько вы довольны услугой, полученной сегодня?",
                "总体而言，您对今天获得的服务感觉如何？",
                "Overall, how did you feel about the service you received today?",
            ),
            required=True,
            indicator="overall",
            scale=5,
            style="faces",
            primary=True,
            labels=_satisfaction_labels(
                _t(
                    "Bình thường",
                    "Ни довольны, ни недовольны",
                    "一般",
                    "Neither satisfied nor dissatisfied",
                )
            ),
        ),
        TextQuestion(
            key="comment",
            text=_t(
                "Chúng tôi có thể cải thiện dịch vụ này như thế nào?",
                "Как мы можем улучшить эту услугу?",
                "我们可以如何改进这项服务？",
                "How could we improve this service?",
            ),
            max_length=1200,
        ),
    ],
)


TEMPLATES = [CSAT, HAOCHAPING, VASH_KONTROL, VN_ONE_STOP, A11_V2, GOVUK]


@hookimpl
def register_survey_templates():
    return [CSAT, HAOCHAPING, VASH_KONTROL, VN_ONE_STOP, A11_V2, GOVUK]
