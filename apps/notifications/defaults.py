"""The built-in wording of every message, in zh-hans and en.

`install_default_templates` (after `migrate`) copies each into a `Template` row (version 1) unless
that key/channel/locale already has one, so operators edit and canary new wordings in the admin;
the built-in text stays the fallback when a template is missing or broken.

Variables every message has: `reference` (order or withdrawal number), `link` (progress page).
Others, by message: `amount`, `account_last4`, `bank`, `eta`, `party` (platform | bank | customer |
merchant), `reason`, `compensation`, `appeal_link`, `change_account_link`, `support_phone`,
`support_link`, `explanation`, `guidance`, `materials`, `summary`, `count`. Values arrive formatted
and masked; a template only places them.
"""

from __future__ import annotations

_ZH_HELP = "客服电话:{{ support_phone }}"
_EN_HELP = "Help: {{ support_phone }}"

BUILTIN: dict[tuple[str, str], dict[str, str]] = {
    # --- refunds (customer) ---
    ("refund_approved", "zh-hans"): {
        "subject": "退款已同意",
        "body": (
            "您订单{{ reference }}的退款{{ amount }}已同意,将原路退回尾号{{ account_last4 }}的{{ bank }}账户"
            "{% if eta %},预计{{ eta }}前到账{% endif %}。查看进度:{{ link }}"
        ),
    },
    ("refund_approved", "en"): {
        "subject": "Refund approved",
        "body": (
            "Your refund of {{ amount }} for order {{ reference }} is approved and goes back to your {{ bank }} "
            "account ending {{ account_last4 }}{% if eta %}; expected by {{ eta }}{% endif %}. Track it: {{ link }}"
        ),
    },
    ("refund_arrived", "zh-hans"): {
        "subject": "退款已到账",
        "body": (
            "您订单{{ reference }}的退款{{ amount }}已退回尾号{{ account_last4 }}的{{ bank }}账户,"
            "请留意银行入账记录。详情:{{ link }}"
        ),
    },
    ("refund_arrived", "en"): {
        "subject": "Refund arrived",
        "body": (
            "The refund of {{ amount }} for order {{ reference }} has been paid to your {{ bank }} account ending "
            "{{ account_last4 }}. Details: {{ link }}"
        ),
    },
    ("refund_delayed", "zh-hans"): {
        "subject": "退款延迟到账",
        "body": (
            "抱歉,您订单{{ reference }}的退款{{ amount }}需要更长时间到账"
            "{% if eta %},新的预计到账时间:{{ eta }}{% endif %}。"
            "{% if party == 'bank' %}原因:{{ bank }}处理延迟,款项已在银行处理中,您无需任何操作。"
            "{% elif party == 'platform' %}原因:我方系统故障,责任在我们,我们将补偿您{{ compensation }}。"
            "{% else %}{{ reason }}{% endif %}"
            "查看进度:{{ link }} " + _ZH_HELP
        ),
    },
    ("refund_delayed", "en"): {
        "subject": "Your refund is delayed",
        "body": (
            "Sorry, the refund of {{ amount }} for order {{ reference }} will take longer"
            "{% if eta %}; new expected arrival: {{ eta }}{% endif %}. "
            "{% if party == 'bank' %}Why: {{ bank }} is taking longer than usual; the money is with the bank and "
            "you need to do nothing. "
            "{% elif party == 'platform' %}Why: a fault in our system. It is our fault, and we will give you "
            "{{ compensation }} to make up for it. {% else %}{{ reason }} {% endif %}"
            "Track it: {{ link }} " + _EN_HELP
        ),
    },
    ("refund_failed_account", "zh-hans"): {
        "subject": "退款未能到账,需要您处理",
        "body": (
            "您订单{{ reference }}的退款{{ amount }}未能退回尾号{{ account_last4 }}的{{ bank }}账户:{{ reason }}。"
            "款项仍安全保留,请按以下步骤处理:1. 打开{{ change_account_link }};2. 填写一个可以正常收款的银行账户;"
            "3. 提交后我们会立即重新退款。" + _ZH_HELP
        ),
    },
    ("refund_failed_account", "en"): {
        "subject": "Action needed: your refund could not be paid",
        "body": (
            "The refund of {{ amount }} for order {{ reference }} could not be paid to your {{ bank }} account ending "
            "{{ account_last4 }}: {{ reason }}. The money is safe with us. What to do: 1. open "
            "{{ change_account_link }}; 2. enter an account that can receive money; 3. submit, and we send the "
            "refund again at once. " + _EN_HELP
        ),
    },
    ("refund_under_review", "zh-hans"): {
        "subject": "退款审核中",
        "body": (
            "您订单{{ reference }}的退款申请{{ amount }}需要人工审核,通常在1个工作日内完成,结果会第一时间通知您,"
            "您无需重复提交。查看进度:{{ link }}"
        ),
    },
    ("refund_under_review", "en"): {
        "subject": "Your refund is being reviewed",
        "body": (
            "Your refund request of {{ amount }} for order {{ reference }} needs a person to review it, usually "
            "within one working day. We will tell you the result; there is no need to ask again. "
            "Track it: {{ link }}"
        ),
    },
    ("refund_rejected", "zh-hans"): {
        "subject": "退款申请未通过",
        "body": (
            "您订单{{ reference }}的退款申请未通过:{{ explanation }}"
            "如有异议,可在这里申诉,由人工复核:{{ appeal_link }} " + _ZH_HELP
        ),
    },
    ("refund_rejected", "en"): {
        "subject": "Refund request declined",
        "body": (
            "Your refund request for order {{ reference }} was declined: {{ explanation }} "
            "If you disagree, appeal here and a person will look at it: {{ appeal_link }} " + _EN_HELP
        ),
    },
    ("refund_tech_support", "zh-hans"): {
        "subject": "我们先帮您解决使用问题",
        "body": (
            "您反馈订单{{ reference }}的商品无法正常使用。技术支持会先帮您解决:{{ guidance }}"
            "在线客服:{{ support_link }} " + _ZH_HELP + "。如果问题解决不了,您仍可继续申请退款:{{ link }}"
        ),
    },
    ("refund_tech_support", "en"): {
        "subject": "Let us fix the problem first",
        "body": (
            "You told us the item in order {{ reference }} does not work. Our support team will help first: "
            "{{ guidance }} Chat: {{ support_link }} " + _EN_HELP + ". If it cannot be fixed, you can still "
            "ask for the refund: {{ link }}"
        ),
    },
    # --- withdrawals (customer) ---
    ("withdrawal_delayed", "zh-hans"): {
        "subject": "提现延迟到账",
        "body": (
            "您的提现{{ reference }}({{ amount }},尾号{{ account_last4 }})已提交,"
            "{% if party == 'platform' %}但因我方系统故障需要更长时间,我们将补偿您{{ compensation }}"
            "{% else %}但{{ bank }}处理延迟{% endif %}"
            "{% if eta %},预计{{ eta }}前到账{% endif %}。您无需操作。查看进度:{{ link }} " + _ZH_HELP
        ),
    },
    ("withdrawal_delayed", "en"): {
        "subject": "Your withdrawal is delayed",
        "body": (
            "Your withdrawal {{ reference }} ({{ amount }}, card ending {{ account_last4 }}) is submitted, but "
            "{% if party == 'platform' %}a fault in our system is slowing it down; we will give you "
            "{{ compensation }}{% else %}{{ bank }} is taking longer than usual{% endif %}"
            "{% if eta %}; expected by {{ eta }}{% endif %}. You need to do nothing. Track it: {{ link }} " + _EN_HELP
        ),
    },
    ("withdrawal_failed_account", "zh-hans"): {
        "subject": "提现失败:银行卡信息不匹配",
        "body": (
            "提现失败:您的提现{{ reference }}({{ amount }})未能到账,{{ bank }}反馈尾号{{ account_last4 }}的"
            "银行卡信息不匹配({{ reason }})。资金已退回您的余额。请前往{{ change_account_link }}核对持卡人姓名和卡号,"
            "修改后重新提交。" + _ZH_HELP
        ),
    },
    ("withdrawal_failed_account", "en"): {
        "subject": "Withdrawal failed: card details do not match",
        "body": (
            "Withdrawal {{ reference }} ({{ amount }}) failed: {{ bank }} says the details of the card ending "
            "{{ account_last4 }} do not match ({{ reason }}). The money is back in your balance. Check the "
            "cardholder name and number at {{ change_account_link }}, then submit again. " + _EN_HELP
        ),
    },
    ("withdrawal_refused", "zh-hans"): {
        "subject": "提现未能提交",
        "body": (
            "您的提现{{ reference }}({{ amount }})未能提交银行:{{ reason }}。资金仍在您的余额中。{{ steps }}。"
            "{% if party == 'platform' %}给您带来不便,我们深表歉意。{% endif %}查看详情:{{ link }} " + _ZH_HELP
        ),
    },
    ("withdrawal_refused", "en"): {
        "subject": "Withdrawal not sent to the bank",
        "body": (
            "Your withdrawal {{ reference }} ({{ amount }}) was not sent to the bank: {{ reason }}. The money stays "
            "in your balance. {{ steps }}. {% if party == 'platform' %}We are sorry for the trouble. {% endif %}"
            "Details: {{ link }} " + _EN_HELP
        ),
    },
    ("withdrawal_held", "zh-hans"): {
        "subject": "提现审核中,需要补充材料",
        "body": (
            "您的提现{{ reference }}({{ amount }})正在安全审核中,资金安全。为尽快完成审核,请提供:{{ materials }}。"
            "上传入口:{{ link }} 审核通常在1个工作日内完成。" + _ZH_HELP
        ),
    },
    ("withdrawal_held", "en"): {
        "subject": "Withdrawal under security review: documents needed",
        "body": (
            "Your withdrawal {{ reference }} ({{ amount }}) is being checked by our security team; your money is "
            "safe. To finish quickly, please send: {{ materials }}. Upload here: {{ link }} Reviews usually take "
            "one working day. " + _EN_HELP
        ),
    },
    # --- commissions (distributors) ---
    ("commission_frozen", "zh-hans"): {
        "subject": "佣金暂时冻结",
        "body": (
            "您因订单{{ reference }}获得的佣金{{ amount }}已暂时冻结:该订单的买家申请了退款。"
            "退款不成立时佣金自动解冻,退款成功时这笔佣金将被扣回。明细:{{ link }}"
        ),
    },
    ("commission_frozen", "en"): {
        "subject": "Commission on hold",
        "body": (
            "Your commission of {{ amount }} from order {{ reference }} is on hold: the buyer asked for a refund. "
            "If the refund does not go through it is released automatically; if it does, the commission is "
            "taken back. Details: {{ link }}"
        ),
    },
    ("commission_clawed_back", "zh-hans"): {
        "subject": "佣金已扣回",
        "body": (
            "订单{{ reference }}已退款,您因该订单获得的佣金{{ amount }}已按规则扣回"
            "{% if reason %}({{ reason }}){% endif %}。明细:{{ link }}"
        ),
    },
    ("commission_clawed_back", "en"): {
        "subject": "Commission taken back",
        "body": (
            "Order {{ reference }} was refunded, so your commission of {{ amount }} from it has been taken back"
            "{% if reason %} ({{ reason }}){% endif %}. Details: {{ link }}"
        ),
    },
    ("commission_released", "zh-hans"): {
        "subject": "佣金已解冻",
        "body": "订单{{ reference }}的退款未成立,您的佣金{{ amount }}已解冻,将按正常周期结算。明细:{{ link }}",
    },
    ("commission_released", "en"): {
        "subject": "Commission released",
        "body": (
            "The refund on order {{ reference }} did not go through, so your commission of {{ amount }} is released "
            "and will be settled as usual. Details: {{ link }}"
        ),
    },
    # --- staff ---
    ("p0_page", "zh-hans"): {
        "subject": "P0告警:{{ summary }}",
        "body": "【RefundGuard P0】{{ summary }}(对象{{ reference }})。请立即处理并在控制台确认:{{ link }}",
        "body_voice": "RefundGuard 紧急告警。{{ summary }}。请立即登录控制台确认处理。",
    },
    ("p0_page", "en"): {
        "subject": "P0 alert: {{ summary }}",
        "body": "[RefundGuard P0] {{ summary }} ({{ reference }}). Act now and acknowledge in the console: {{ link }}",
        "body_voice": "RefundGuard priority zero alert. {{ summary }}. Please acknowledge it in the console now.",
    },
    ("payout_problem", "zh-hans"): {
        "subject": "结算打款{{ reference }}需要关注",
        "body": (
            "结算打款{{ reference }}({{ amount }},尾号{{ account_last4 }}):{{ reason }}。"
            "{% if party == 'bank' %}责任方:{{ bank }}。{% endif %}请在控制台查看处理:{{ link }}"
        ),
    },
    ("payout_problem", "en"): {
        "subject": "Payout {{ reference }} needs attention",
        "body": (
            "Payout {{ reference }} ({{ amount }}, account ending {{ account_last4 }}): {{ reason }}. "
            "{% if party == 'bank' %}Responsible: {{ bank }}. {% endif %}See it in the console: {{ link }}"
        ),
    },
    # --- rate limit ---
    ("sms_digest", "zh-hans"): {
        "subject": "消息汇总",
        "body": (
            "您有{{ count }}条新的退款/提现进度消息,为免打扰已合并,请在消息中心查看{% if link %}:{{ link }}{% endif %}"
        ),
    },
    ("sms_digest", "en"): {
        "subject": "Updates waiting",
        "body": (
            "You have {{ count }} new refund or withdrawal updates, grouped so we do not text you too often. "
            "Read them in your inbox{% if link %}: {{ link }}{% endif %}"
        ),
    },
}

KEYS: tuple[str, ...] = tuple(sorted({key for key, _ in BUILTIN}))


def install_default_templates(sender=None, **kwargs) -> int:
    """Insert the built-in wordings missing from the Template table. Idempotent."""
    from apps.notifications.models import Template

    existing = set(Template.objects.values_list("key", "channel", "locale"))
    rows = []
    for (key, locale), texts in BUILTIN.items():
        variants = [("", texts["body"])] + [
            (channel, texts[f"body_{channel}"]) for channel in ("sms", "voice") if f"body_{channel}" in texts
        ]
        for channel, body in variants:
            if (key, channel, locale) not in existing:
                rows.append(
                    Template(
                        key=key, channel=channel, locale=locale, version=1, subject=texts.get("subject", ""), body=body
                    )
                )
    Template.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
