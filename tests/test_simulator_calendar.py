"""The simulator's calendars and schedules (日历 / 日程), as WeCom keeps them: no duplicate check on add,
update overwrites, deleted schedules stay readable with status 1, another app's calendar is out of reach,
and the permission an admin must grant. Real HTTP to the simulator."""

from __future__ import annotations

import json

import pytest
import requests

from wecom_simulator import SimulatorAdmin, SimulatorConfig, WeComSimulator

CONFIG = SimulatorConfig()
START = 1_767_225_600  # 2026-01-01 08:00 in Shanghai


class Api:
    """oa/calendar/* and oa/schedule/* as the app calls them, with a token from gettoken."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.token = self.session.get(f"{url}/cgi-bin/gettoken", params={"corpid": CONFIG.corp_id,
                                      "corpsecret": CONFIG.secret}, timeout=5).json()["access_token"]  # fmt: skip

    def post(self, path: str, body: dict) -> dict:
        answer = self.session.post(f"{self.url}/cgi-bin/{path}", params={"access_token": self.token},
                                   data=json.dumps(body, ensure_ascii=False).encode(), timeout=5)  # fmt: skip
        return answer.json()

    def calendar(self, organizer: str, agentid: int = CONFIG.agent_id, **fields: object) -> dict:
        calendar = {"organizer": organizer, "summary": "面试", "color": "#0000FF", **fields}
        return self.post("oa/calendar/add", {"calendar": calendar, "agentid": agentid})

    def add(
        self, cal_id: str | None, attendees: list[str], agentid: int = CONFIG.agent_id, **fields: object
    ) -> dict:
        return self.post(
            "oa/schedule/add", {"schedule": schedule(cal_id, attendees, **fields), "agentid": agentid}
        )

    def update(self, schedule_id: str, attendees: list[str] | None, skip_attendees: int = 0,
               cal_id: str | None = None, **fields: object) -> dict:  # fmt: skip
        """The whole schedule again (update overwrites); no cal_id unless given."""
        section = {"schedule_id": schedule_id, **schedule(cal_id, attendees, **fields)}
        return self.post("oa/schedule/update", {"schedule": section, "skip_attendees": skip_attendees})

    def get(self, *schedule_ids: str) -> list[dict]:
        answer = self.post("oa/schedule/get", {"schedule_id_list": list(schedule_ids)})
        assert answer["errcode"] == 0, answer
        return answer["schedule_list"]

    def page(self, cal_id: str, offset: int = 0, limit: int = 500) -> dict:
        return self.post("oa/schedule/get_by_calendar", {"cal_id": cal_id, "offset": offset, "limit": limit})


def schedule(cal_id: str | None, attendees: list[str] | None, **fields: object) -> dict:
    body: dict = {"start_time": START, "end_time": START + 3600, "summary": "面试：张三", "location": "3楼 301",
                  "description": "候选人：张三", "reminders": {"is_remind": 1, "remind_before_event_secs": 900,
                                                           "remind_time_diffs": [-900]}, **fields}  # fmt: skip
    if cal_id is not None:
        body["cal_id"] = cal_id
    if attendees is not None:
        body["attendees"] = [{"userid": u} for u in attendees]
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def api(simulator: WeComSimulator) -> Api:
    return Api(simulator.url)


@pytest.fixture
def people(simulator: WeComSimulator) -> list[str]:
    return sorted(u["userid"] for u in simulator.state.org.users.values())


@pytest.fixture
def cal_id(api: Api, people: list[str]) -> str:
    answer = api.calendar(people[0])
    assert answer["errcode"] == 0 and isinstance(answer["cal_id"], str), answer
    return answer["cal_id"]


def ok(answer: dict) -> dict:
    assert answer["errcode"] == 0 and answer["errmsg"] == "ok", answer
    return answer


def test_calendar_and_schedule_round_trip(api, people, cal_id):
    [calendar] = ok(api.post("oa/calendar/get", {"cal_id_list": [cal_id]}))["calendar_list"]
    assert (
        calendar["organizer"] == people[0]
        and calendar["summary"] == "面试"
        and calendar["color"] == "#0000FF"
    )

    schedule_id = ok(api.add(cal_id, people[1:3]))["schedule_id"]
    [made] = api.get(schedule_id)
    assert made["cal_id"] == cal_id and made["organizer"] == people[0] and made["status"] == 0
    assert (made["start_time"], made["end_time"], made["summary"]) == (START, START + 3600, "面试：张三")
    assert made["attendees"] == [
        {"userid": people[1], "response_status": 0},
        {"userid": people[2], "response_status": 0},
    ]
    assert made["reminders"] == {"is_remind": 1, "remind_before_event_secs": 900, "remind_time_diffs": [-900]}

    # update overwrites: what is left out is cleared, the attendee list is replaced, sequence goes up
    ok(api.update(schedule_id, [people[3]], start_time=START + 7200, end_time=START + 9000, location=None))
    [changed] = api.get(schedule_id)
    assert (
        changed["start_time"] == START + 7200
        and changed["location"] == ""
        and changed["summary"] == "面试：张三"
    )
    assert [a["userid"] for a in changed["attendees"]] == [people[3]]
    assert changed["sequence"] == made["sequence"] + 1
    ok(
        api.update(schedule_id, None, skip_attendees=1, summary="改期")
    )  # attendees kept, reminders kept as sent
    [kept] = api.get(schedule_id)
    assert [a["userid"] for a in kept["attendees"]] == [people[3]] and kept["summary"] == "改期"
    ok(api.update(schedule_id, None, reminders=None))  # no skip_attendees, no attendees: none left
    [emptied] = api.get(schedule_id)
    assert (
        emptied["attendees"] == []
        and emptied["reminders"] == {}
        and emptied["sequence"] == made["sequence"] + 3
    )

    ok(
        api.post(
            "oa/schedule/add_attendees", {"schedule_id": schedule_id, "attendees": [{"userid": people[4]}]}
        )
    )
    ok(
        api.post(
            "oa/schedule/del_attendees", {"schedule_id": schedule_id, "attendees": [{"userid": people[4]}]}
        )
    )
    ok(
        api.post(
            "oa/schedule/add_attendees", {"schedule_id": schedule_id, "attendees": [{"userid": people[5]}]}
        )
    )
    assert [a["userid"] for a in api.get(schedule_id)[0]["attendees"]] == [people[5]]

    # delete: still readable with status 1; a second delete is 90460; unknown ids are left out of get
    ok(api.post("oa/schedule/del", {"schedule_id": schedule_id}))
    assert [s["status"] for s in api.get(schedule_id, "no-such-id")] == [1]
    assert api.post("oa/schedule/del", {"schedule_id": schedule_id})["errcode"] == 90460
    assert api.post("oa/schedule/del", {"schedule_id": "no-such-id"})["errcode"] == 90461
    assert api.update(schedule_id, [people[1]])["errcode"] == 90460
    assert api.update("no-such-id", [people[1]])["errcode"] == 90461


def test_get_by_calendar_pages_in_creation_order_deleted_included(api, people, cal_id):
    ids = [ok(api.add(cal_id, [people[1]], summary=f"第{i}场"))["schedule_id"] for i in range(5)]
    ok(api.post("oa/schedule/del", {"schedule_id": ids[1]}))
    seen, offset = [], 0
    while page := ok(api.page(cal_id, offset, limit=2))["schedule_list"]:
        assert len(page) <= 2
        seen += page
        offset += len(page)
    assert [s["schedule_id"] for s in seen] == ids
    assert [s["status"] for s in seen] == [0, 1, 0, 0, 0]
    assert [s["schedule_id"] for s in ok(api.post("oa/schedule/get_by_calendar", {"cal_id": cal_id}))
            ["schedule_list"]] == ids  # fmt: skip


def test_no_duplicate_check_the_same_add_twice_makes_two(api, people, cal_id, sim_admin):
    first = ok(api.add(cal_id, [people[1]]))["schedule_id"]
    second = ok(api.add(cal_id, [people[1]]))["schedule_id"]
    assert first != second
    schedules = sim_admin.schedules()
    assert [s["schedule_id"] for s in schedules] == [first, second]
    assert schedules[0]["summary"] == schedules[1]["summary"] and all("created_at" in s for s in schedules)
    assert len(sim_admin.calendar(people[1])) == 2
    assert sim_admin.calls("oa/schedule/add") == 2 and sim_admin.stats()["schedules"] == 2


def test_calendar_validation(api, people):
    assert api.calendar("nobody-here")["errcode"] == 60111
    assert api.post("oa/calendar/add", {"calendar": {"summary": "x", "color": "#000000"}})["errcode"] == 90456
    assert api.calendar(people[0], summary="")["errcode"] == 40058
    assert api.calendar(people[0], summary="日" * 129)["errcode"] == 40058
    assert ok(api.calendar(people[0], summary="日" * 128))  # characters, not bytes
    assert api.calendar(people[0], color="blue")["errcode"] == 90473
    assert api.calendar(people[0], color="#12345G")["errcode"] == 90473
    assert api.calendar(people[0], description="d" * 513)["errcode"] == 40058
    assert api.calendar(people[0], shares=[{"userid": people[1]}, {"userid": "ghost"}])["errcode"] == 60111
    assert api.calendar(people[0], shares=[{"userid": people[1]}] * 2001)["errcode"] == 40058
    shared = ok(api.calendar(people[0], shares=[{"userid": people[1], "readonly": 0}]))["cal_id"]
    [calendar] = ok(api.post("oa/calendar/get", {"cal_id_list": [shared]}))["calendar_list"]
    assert calendar["shares"] == [{"userid": people[1], "readonly": 0}]
    assert api.post("oa/calendar/get", {"cal_id_list": [shared, "no-such-cal"]})["errcode"] == 90457


def test_schedule_validation(api, people, cal_id):
    def code(answer: dict) -> int:
        return answer["errcode"]

    assert code(api.add(cal_id, [people[1]], end_time=START)) == 40058
    assert code(api.add(cal_id, [people[1]], start_time=None)) == 40058
    assert code(api.add(cal_id, [f"u{i}" for i in range(1001)])) == 90464
    missing = api.add(cal_id, [people[1], "left-the-company"])
    assert code(missing) == 60111 and "left-the-company" in missing["errmsg"]
    assert code(api.add(cal_id, [people[1]], summary="日" * 129)) == 40058
    assert code(api.add(cal_id, [people[1]], location="楼" * 129)) == 40058
    assert code(api.add(cal_id, [people[1]], description="d" * 1001)) == 40058
    assert (
        code(api.add(cal_id, [people[1]], summary="日" * 128, location="楼" * 128, description="d" * 1000))
        == 0
    )
    assert code(api.add(cal_id, [people[1]], admins=people[1:5])) == 40058
    assert (
        code(api.add(cal_id, [people[1]], reminders={"is_remind": 1, "remind_before_event_secs": 600}))
        == 90471
    )
    assert (
        code(api.add(cal_id, [people[1]], reminders={"is_remind": 1, "remind_time_diffs": [3600]})) == 90704
    )
    assert (
        code(api.add(cal_id, [people[1]], reminders={"is_remind": 1, "remind_time_diffs": [0, -86400]})) == 0
    )
    assert code(api.add(None, [people[1]])) == 90708
    assert code(api.add("no-such-cal", [people[1]])) == 90457
    assert len(api.page(cal_id)["schedule_list"]) == 2  # the failed calls made nothing

    other = ok(api.calendar(people[0], agentid=CONFIG.agent_id + 1))["cal_id"]  # made by another app
    assert code(api.add(other, [people[1]])) == 90466
    assert code(api.page(other)) == 90466
    assert code(api.add(other, [people[1]], agentid=CONFIG.agent_id + 1)) == 0

    assert code(api.page(cal_id, limit=0)) == 90469
    assert code(api.page(cal_id, limit=1001)) == 90469
    assert code(api.page(cal_id, offset=-1)) == 90470
    assert code(api.page("no-such-cal")) == 90457

    schedule_id = ok(api.add(cal_id, [people[1]]))["schedule_id"]
    second = ok(api.calendar(people[0]))["cal_id"]
    assert code(api.update(schedule_id, [people[1]], cal_id=second)) == 90463
    assert code(api.update(schedule_id, [people[1]], end_time=START - 1)) == 40058
    assert code(api.update(schedule_id, ["ghost"])) == 60111
    assert api.get(schedule_id)[0]["sequence"] == 1  # refused updates change nothing

    ok(api.post("oa/calendar/del", {"cal_id": cal_id}))
    assert code(api.add(cal_id, [people[1]])) == 90459
    assert code(api.page(cal_id)) == 90459
    assert code(api.post("oa/calendar/get", {"cal_id_list": [cal_id]})) == 90459
    assert api.get(schedule_id)[0]["status"] == 1  # the calendar's schedules went with it


def test_permission_toggle_answers_48002(api, people, cal_id, sim_admin):
    sim_admin.allow_schedules(False)
    for path, body in [("oa/calendar/add", {"calendar": {"organizer": people[0]}}),
                       ("oa/schedule/add", {"schedule": schedule(cal_id, [people[1]])}),
                       ("oa/schedule/get_by_calendar", {"cal_id": cal_id})]:  # fmt: skip
        answer = api.post(path, body)
        assert answer["errcode"] == 48002 and "api forbidden" in answer["errmsg"]
    assert sim_admin.schedules() == [] and sim_admin.calls("oa/schedule/add") == 1
    sim_admin.allow_schedules(True)
    ok(api.add(cal_id, [people[1]]))
    with WeComSimulator(config=SimulatorConfig(schedule_allowed=False)) as forbidden:
        assert Api(forbidden.url).post("oa/calendar/get", {"cal_id_list": ["x"]})["errcode"] == 48002


def test_lost_answer_fault_leaves_the_schedule_created(api, people, cal_id, sim_admin):
    sim_admin.fault("lost_answer", path="oa/schedule/add")
    with pytest.raises(requests.ConnectionError):
        api.add(cal_id, [people[1]])
    [made] = sim_admin.schedules()
    assert made["status"] == 0 and made["attendees"][0]["userid"] == people[1]
    retried = ok(api.add(cal_id, [people[1]]))["schedule_id"]  # a blind retry: a second schedule
    assert [s["schedule_id"] for s in sim_admin.schedules()] == [made["schedule_id"], retried]
    assert sim_admin.calls("oa/schedule/add") == 2 and sim_admin.stats()["faults_fired"] == 1

    sim_admin.fault("truncated", path="oa/schedule/add")  # half an answer: also made
    with pytest.raises(ValueError):
        api.add(cal_id, [people[1]])
    sim_admin.fault("errcode", path="oa/schedule/add", errcode=-1)  # refused before: nothing made
    assert api.add(cal_id, [people[1]])["errcode"] == -1
    assert len(sim_admin.schedules()) == 3


def test_admin_calendar_view_follows_update_and_delete(api, people, cal_id, sim_admin):
    alice, bob = people[1], people[2]
    schedule_id = ok(api.add(cal_id, [alice, bob]))["schedule_id"]
    [seen] = sim_admin.calendar(alice)
    assert (
        seen["schedule_id"] == schedule_id
        and seen["summary"] == "面试：张三"
        and seen["location"] == "3楼 301"
    )
    assert (seen["start_time"], seen["start"], seen["end"]) == (START, "2026-01-01T08:00:00+08:00",
                                                                "2026-01-01T09:00:00+08:00")  # fmt: skip
    assert seen["reminders"]["remind_time_diffs"] == [-900] and seen["sequence"] == 1
    assert sim_admin.calendar(bob.upper())[0]["schedule_id"] == schedule_id  # userids are case-insensitive

    answered = sim_admin.respond_to_schedule(schedule_id, alice, 1)
    assert answered["ok"] and api.get(schedule_id)[0]["attendees"][0] == {
        "userid": alice,
        "response_status": 1,
    }

    ok(
        api.update(
            schedule_id,
            [alice],
            summary="面试：张三（改期）",
            start_time=START + 86400,
            end_time=START + 90000,
        )
    )
    assert sim_admin.calendar(bob) == []
    [moved] = sim_admin.calendar(alice)
    assert moved["summary"] == "面试：张三（改期）" and moved["start"] == "2026-01-02T08:00:00+08:00"
    assert moved["sequence"] == 2 and moved["response_status"] == 1  # who stays keeps their answer

    ok(api.post("oa/schedule/del", {"schedule_id": schedule_id}))
    assert sim_admin.calendar(alice) == []
    assert sim_admin.schedules(include_deleted=False) == [] and len(sim_admin.schedules()) == 1


def test_reset_clears_calendars_schedules_and_permission(api, people, cal_id, sim_admin: SimulatorAdmin):
    ok(api.add(cal_id, [people[1]]))
    sim_admin.allow_schedules(False)
    assert len(sim_admin.calendars()) == 1 and sim_admin.calendars()[0]["agentid"] == CONFIG.agent_id
    sim_admin.reset()
    assert sim_admin.calendars() == [] and sim_admin.schedules() == [] and sim_admin.calendar(people[1]) == []
    assert api.add(cal_id, [people[1]])["errcode"] == 90457  # allowed again, and the calendar is gone
