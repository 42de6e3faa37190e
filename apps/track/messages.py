"""Plain words for the timeline, per event code, in the customer's language."""

STEPS = {
    "requested": {"zh-hans": "已收到您的退款申请", "en": "We received your refund request"},
    "approved": {"zh-hans": "退款已同意", "en": "Refund approved"},
    "manual_review": {"zh-hans": "正在人工审核", "en": "A person is reviewing your refund"},
    "rejected": {"zh-hans": "退款未通过，可申诉人工处理", "en": "Refund declined; you can appeal to a person"},
    "tech_support": {"zh-hans": "已转技术支持帮您解决问题", "en": "Sent to technical support to fix the problem"},
    "submitted": {"zh-hans": "已提交银行", "en": "Sent to the bank"},
    "processing": {"zh-hans": "银行处理中", "en": "The bank is processing it"},
    "held_by_bank": {"zh-hans": "银行风控审核中", "en": "Held by the bank's security review"},
    "unknown": {"zh-hans": "正在向银行确认结果", "en": "Confirming the result with the bank"},
    "resubmitted": {"zh-hans": "银行确认未执行，已重新提交", "en": "The bank had not executed it; sent again"},
    "succeeded": {"zh-hans": "退款已到账", "en": "The money has arrived"},
    "failed": {"zh-hans": "银行处理失败", "en": "The bank could not complete it"},
    "retrying": {"zh-hans": "正在自动重试", "en": "Retrying automatically"},
    "needs_action": {"zh-hans": "需要您核对收款账户", "en": "Please check your receiving account"},
    "account_updated": {"zh-hans": "已更新收款账户", "en": "Receiving account updated"},
    "reversed": {
        "zh-hans": "银行退回了款项（账户可能已注销）",
        "en": "The bank returned the money (account may be closed)",
    },
    "cancelled": {"zh-hans": "已取消", "en": "Cancelled"},
    # withdrawals
    "created": {"zh-hans": "已收到您的提现申请", "en": "We received your withdrawal request"},
    "checking": {"zh-hans": "正在进行安全检查", "en": "Running safety checks"},
    "held": {"zh-hans": "安全审核中,可能需要您补充材料", "en": "Under security review; we may need documents"},
    "released": {"zh-hans": "审核通过", "en": "Review passed"},
    "pending_approval": {"zh-hans": "等待复核", "en": "Waiting for a second check"},
    "precheck_failed": {
        "zh-hans": "检查未通过,请核对银行卡信息",
        "en": "Checks failed; please check your card details",
    },
    "paid": {"zh-hans": "已到账", "en": "The money has arrived"},
    "returned": {"zh-hans": "银行退回了款项", "en": "The bank returned the money"},
}

PARTIES = {
    "platform": {"zh-hans": "平台", "en": "Platform"},
    "bank": {"zh-hans": "银行", "en": "Bank"},
    "customer": {"zh-hans": "您", "en": "You"},
    "merchant": {"zh-hans": "商家", "en": "Merchant"},
}


def step_text(code: str, locale: str) -> str:
    texts = STEPS.get(code)
    if texts is None:
        return code
    return texts.get(locale) or texts["en"]


def party_text(party: str, locale: str) -> str:
    texts = PARTIES.get(party, {})
    return texts.get(locale) or texts.get("en") or party
