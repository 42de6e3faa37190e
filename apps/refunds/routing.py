"""Route free-text refund reasons by phrase: "视频无法播放" or "it keeps crashing" go to tech support.

Chinese text is segmented with rjieba (jieba's maintained Rust port) and a phrase matches when its
own segmentation appears as a contiguous run of the text's tokens — so 报错 matches "一直报错" but
not "汇报错了" (汇报/错/了). English phrases match on word boundaries. Phrases live in the
database (ReasonPhrase, editable in the admin) and are cached per process until they change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache

import rjieba
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.common import localcache
from apps.refunds.models import ReasonPhrase

_VERSION_KEY = "refunds:reason-phrases:version"
# A phrase edit reaches the process that made it at once and every other process within this.
VERSION_CHECK_SECONDS = 1.0
_CJK = re.compile(r"[\u3400-\u9fff]")
# Phone keyboards type typographic apostrophes ("can’t play"); phrases are stored with ASCII ones.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})

GUIDANCE = {
    "playback": {
        "zh-hans": ["刷新页面或重启App后再试", "切换网络（Wi-Fi/4G）或降低清晰度", "更新浏览器或App到最新版本"],
        "en": [
            "Reload the page or restart the app",
            "Switch network or lower the video quality",
            "Update the browser or app",
        ],
    },
    "error": {
        "zh-hans": ["记下报错信息或截图", "重启软件并重新登录", "联系客服时附上报错截图，我们会优先处理"],
        "en": [
            "Note the error message or take a screenshot",
            "Restart and sign in again",
            "Send the screenshot to support",
        ],
    },
    "compatibility": {
        "zh-hans": ["确认系统版本满足商品说明中的要求", "尝试其他设备或浏览器", "联系客服获取兼容版本"],
        "en": [
            "Check the system requirements on the product page",
            "Try another device or browser",
            "Ask support for a compatible version",
        ],
    },
    "access": {
        "zh-hans": ["确认使用购买时的账号登录", "检查下载链接或激活码是否完整复制", "联系客服重新发送"],
        "en": [
            "Sign in with the account you bought with",
            "Check the link or key was copied whole",
            "Ask support to resend it",
        ],
    },
}


@dataclass(frozen=True)
class Route:
    route: str
    category: str
    phrases: tuple[str, ...]


def _normalise(text: str) -> str:
    return text.translate(_APOSTROPHES).lower()


def _tokens(text: str) -> list[str]:
    return [t for t in rjieba.cut(_normalise(text)) if t.strip()]


def _fresh_version() -> int:
    # Never a number used before: after the key is evicted, a reset to a small constant could
    # name a compiled table another edit has since made stale in this process's lru_cache.
    return time.time_ns()


@lru_cache(maxsize=8)
def _compiled(version: int) -> tuple[list[tuple[list[str], ReasonPhrase]], list[tuple[re.Pattern, ReasonPhrase]]]:
    zh, en = [], []
    for phrase in ReasonPhrase.objects.filter(is_active=True):
        if _CJK.search(phrase.phrase):
            zh.append((_tokens(phrase.phrase), phrase))
        else:
            pattern = re.compile(r"(?<![\w'])" + re.escape(_normalise(phrase.phrase)) + r"(?![\w'])")
            en.append((pattern, phrase))
    return zh, en


def _contains_run(tokens: list[str], run: list[str]) -> bool:
    width = len(run)
    return any(tokens[i : i + width] == run for i in range(len(tokens) - width + 1))


def route_reason_text(text: str) -> Route | None:
    """The route the text's phrases call for, or None. Ties go to the first phrase found."""
    if not text or not text.strip():
        return None
    version = localcache.get_or_set(_VERSION_KEY, _fresh_version, local_seconds=VERSION_CHECK_SECONDS, timeout=None)
    zh, en = _compiled(version)
    lowered = _normalise(text)
    tokens = _tokens(text) if _CJK.search(text) else []
    hits = [p for run, p in zh if tokens and _contains_run(tokens, run)]
    hits += [p for pattern, p in en if pattern.search(lowered)]
    if not hits:
        return None
    return Route(route=hits[0].route, category=hits[0].category, phrases=tuple(p.phrase for p in hits))


def guidance_for(category: str, locale: str) -> list[str]:
    texts = GUIDANCE.get(category) or GUIDANCE["error"]
    return texts.get(locale) or texts["en"]


def _bump_version() -> None:
    try:
        cache.incr(_VERSION_KEY)
    except ValueError:
        cache.set(_VERSION_KEY, _fresh_version(), timeout=None)
    localcache.forget(_VERSION_KEY)


@receiver([post_save, post_delete], sender=ReasonPhrase)
def _phrases_changed(**kwargs) -> None:
    # After commit: bumped earlier, another process could compile the table before the edit is
    # visible (or from an edit later rolled back) and keep it under the new version for good.
    transaction.on_commit(_bump_version)
