from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _bind_integers_as_bigint(sender, connection, **kwargs) -> None:
    """With server-side binding (settings: DB_SERVER_SIDE_BINDING) psycopg would type each Python
    int parameter by its value (smallint, integer or bigint), so `%s + %s` of two amounts is integer
    arithmetic and fails past 2³¹, and one statement is prepared once per type combination. Every
    amount and id here is a bigint: bind every int as one."""
    if connection.vendor != "postgresql":
        return
    from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

    adapters = connection.connection.adapters
    adapters.register_dumper(int, Int8Dumper)
    adapters.register_dumper(int, Int8BinaryDumper)


class CommonConfig(AppConfig):
    name = "apps.common"
    label = "common"
    verbose_name = "Platform"

    def ready(self) -> None:
        connection_created.connect(_bind_integers_as_bigint, dispatch_uid="common.bind_integers_as_bigint")
        from apps.common import audit  # noqa: F401 (connects the task and sign-in receivers)
