"""Default phrase table for routing free-text reasons to tech support (editable in the admin)."""

from django.db import migrations

PHRASES = [
    # (phrase, language, category)
    ("用不了", "zh", "access"),
    ("打不开", "zh", "access"),
    ("无法登录", "zh", "access"),
    ("登录不了", "zh", "access"),
    ("激活失败", "zh", "access"),
    ("下载不了", "zh", "access"),
    ("报错", "zh", "error"),
    ("闪退", "zh", "error"),
    ("崩溃", "zh", "error"),
    ("出错", "zh", "error"),
    ("无法播放", "zh", "playback"),
    ("播放不了", "zh", "playback"),
    ("卡顿", "zh", "playback"),
    ("黑屏", "zh", "playback"),
    ("没有声音", "zh", "playback"),
    ("兼容性", "zh", "compatibility"),
    ("不兼容", "zh", "compatibility"),
    ("can't play", "en", "playback"),
    ("cannot play", "en", "playback"),
    ("won't play", "en", "playback"),
    ("doesn't play", "en", "playback"),
    ("no sound", "en", "playback"),
    ("error", "en", "error"),
    ("crash", "en", "error"),
    ("crashes", "en", "error"),
    ("crashed", "en", "error"),
    ("crashing", "en", "error"),
    ("bug", "en", "error"),
    ("doesn't work", "en", "access"),
    ("does not work", "en", "access"),
    ("not working", "en", "access"),
    ("can't open", "en", "access"),
    ("cannot open", "en", "access"),
    ("can't log in", "en", "access"),
    ("activation failed", "en", "access"),
    ("incompatible", "en", "compatibility"),
    ("compatibility", "en", "compatibility"),
    ("not compatible", "en", "compatibility"),
]


def forward(apps, schema_editor):
    ReasonPhrase = apps.get_model("refunds", "ReasonPhrase")
    for phrase, language, category in PHRASES:
        ReasonPhrase.objects.get_or_create(
            phrase=phrase, language=language, defaults={"category": category, "route": "tech_support"}
        )


def backward(apps, schema_editor):
    ReasonPhrase = apps.get_model("refunds", "ReasonPhrase")
    ReasonPhrase.objects.filter(phrase__in=[p for p, _, _ in PHRASES]).delete()


class Migration(migrations.Migration):
    dependencies = [("refunds", "0002_reasonphrase_supportticket")]

    operations = [migrations.RunPython(forward, backward)]
