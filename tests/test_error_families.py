"""The two error families of ``wecom.errors`` and the one retry rule of each, checked on every class (those
defined elsewhere too), every errcode of the table and every HTTP status."""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import pytest
from airflow.sdk.exceptions import AirflowFailException

import wecom
from wecom import errors
from wecom.callbacks.crypto import CallbackRejected
from wecom.errors import (
    BUSY,
    ERRCODES,
    LocalError,
    Reaction,
    SettingsError,
    WeComAnswerError,
    WeComError,
    WeComTransientError,
    WorkPending,
    error_for,
    reaction,
    read_answer,
)


def _every_subclass(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _every_subclass(sub)
    return found


@pytest.fixture(scope="module")
def every_error_class() -> set[type]:
    """Every subclass of WeComError in the package (classes like DirectoryDataError live in their modules)."""
    for module in pkgutil.walk_packages(wecom.__path__, "wecom."):
        importlib.import_module(module.name)
    return _every_subclass(WeComError)


def test_every_error_is_in_exactly_one_family(every_error_class):
    for cls in every_error_class - {WeComAnswerError, LocalError}:
        assert issubclass(cls, WeComAnswerError) != issubclass(cls, LocalError), cls


def test_wecom_answers_fail_at_once_exactly_when_the_table_says_so(every_error_class):
    for code, (kind, _) in ERRCODES.items():
        error = error_for(code, "errmsg", "some/path")
        assert reaction(error.errcode) is kind and error.advice
        assert isinstance(error, AirflowFailException) == kind.fails_at_once, code
    unlisted = error_for(123456789, "new", "some/path")
    assert type(unlisted) is WeComAnswerError and not isinstance(unlisted, AirflowFailException)
    assert {Reaction.CONFIG, Reaction.CALLER} == {kind for kind in Reaction if kind.fails_at_once}
    for cls in every_error_class:
        if issubclass(cls, WeComAnswerError) and cls is not WeComAnswerError:
            kinds = {kind for kind in Reaction if isinstance(error_for(_code_of(kind), "", "p"), cls)}
            assert kinds and all(issubclass(cls, AirflowFailException) == k.fails_at_once for k in kinds), cls


def _code_of(kind: Reaction) -> int:
    return next(code for code, (k, _) in ERRCODES.items() if k is kind)


def test_ours_fail_at_once_unless_time_can_settle_them(every_error_class):
    ours = {cls for cls in every_error_class if issubclass(cls, LocalError)} - {LocalError}
    names = {cls.__name__ for cls in ours}
    assert {"SettingsError", "WeComDataError", "PipelineStateError", "WorkPending", "NotConfigured"} <= names
    assert {"DirectoryDataError", "MassRemovalBlocked"} <= names
    for cls in ours:
        assert issubclass(cls, AirflowFailException) == (not issubclass(cls, WorkPending)), cls
    assert WorkPending("2 card(s) not updated yet").errcode is None


def test_an_http_status_maps_to_one_family_consistently():
    """200 is an answer; 429 and 5xx are WeCom's 'busy' (the table says: retry); any other status is ours."""
    for status in range(100, 600):
        try:
            read_answer(status, b'{"errcode": 0}', "user/list")
        except WeComAnswerError as exc:
            assert (status >= 500 or status == 429) and exc.errcode == BUSY, status
            assert type(exc) is WeComTransientError and reaction(exc.errcode) is Reaction.RETRY
        except SettingsError as exc:
            assert status != 200 and exc.errcode is None and "API base URL" in str(exc), status
        else:
            assert status == 200


def test_errors_survive_pickling_with_their_fields():
    def described(e: WeComAnswerError) -> tuple:
        return type(e), e.errcode, e.errmsg, e.path, e.advice, str(e)

    for code in (BUSY, 40001, 45002, 60111, 45009, 7):
        error = error_for(code, "msg, hint: [x]", "a/path")
        assert described(pickle.loads(pickle.dumps(error))) == described(error)
    for error in (SettingsError("no corp id"), errors.WeComDataError("bad"), WorkPending("later")):
        assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_a_refused_callback_is_neither_family():
    """The receiver's verdict on a request from the internet: answered 4xx, never raised into a task."""
    assert not issubclass(CallbackRejected, WeComError) and issubclass(CallbackRejected, ValueError)


def test_the_table_uses_the_names_it_defines():
    """A code with a name in wecom.errors is the same entry under its name (no second spelling)."""
    named = {value for name, value in vars(errors).items() if name.isupper() and type(value) is int}
    assert {errors.CARD_CODE_INVALID, errors.CARDS_NEED_CALLBACK, errors.RATE_LIMITED} <= named
    assert (named - {errors.OK}) <= set(ERRCODES)
    source = open(errors.__file__, encoding="utf-8").read()
    for name, value in vars(errors).items():
        if name.isupper() and type(value) is int and value in ERRCODES:
            assert f"\n    {value}: (" not in source, f"the table spells {name} as {value}"
