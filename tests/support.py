"""Helpers shared by test modules of several apps."""

import threading
from collections.abc import Callable

from django.db import connection
from rest_framework.test import APIClient

from apps.accounts.models import BankAccount, Customer
from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.orders.models import Order, Product, RefundPolicy, UsageEvent

# Every table a foundation endpoint (customers, products, orders, usage) can write.
FOUNDATION_TABLES = (
    Customer,
    Product,
    RefundPolicy,
    Order,
    UsageEvent,
    BankAccount,
    LedgerAccount,
    LedgerTransaction,
    LedgerEntry,
)


def count_rows(models) -> dict[str, int]:
    """Rows per table, to prove a refused request wrote nothing."""
    return {model.__name__: model.objects.count() for model in models}


def send_at_once(api: APIClient, count: int, send: Callable[[APIClient], object]) -> list[tuple[int, dict, bool]]:
    """`count` clients with `api`'s credentials call `send(client)` together (one barrier), each
    thread on its own database connection; their answers as (status, body, replayed)."""
    barrier = threading.Barrier(count)
    answers: list[tuple[int, dict, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        client = APIClient()
        client._credentials = dict(api._credentials)
        try:
            barrier.wait()
            response = send(client)
            with lock:
                answers.append((response.status_code, response.json(), response.get("Idempotent-Replayed") == "true"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return answers


def run_at_once(count: int, work: Callable[[int], object]) -> list[object]:
    """`work(0)` … `work(count - 1)` in `count` threads released together (one barrier), each on
    its own database connection, closed when it is done; their results (or what they raised), in order."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
