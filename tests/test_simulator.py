"""The simulator is a faithful stand-in: wire format, org shape, limits and its console script."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from wecom_simulator import SimulatorAdmin, SimulatorConfig, WeComSimulator, generate_org
from wecom_simulator.org import SENSITIVE_FIELDS


def test_console_script_answers_gettoken_over_http():
    process = subprocess.Popen(
        [sys.executable, "-m", "wecom_simulator", "--port", "0", "--users", "30", "--departments", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split("listening on ")[1].split()[0]
        config = SimulatorConfig()
        body = requests.get(
            f"{url}/cgi-bin/gettoken",
            params={"corpid": config.corp_id, "corpsecret": config.secret},
            timeout=5,
        ).json()
        assert body["errcode"] == 0 and body["expires_in"] == 7200 and len(body["access_token"]) > 20
        bad = requests.get(
            f"{url}/cgi-bin/gettoken", params={"corpid": config.corp_id, "corpsecret": "x"}, timeout=5
        )
        assert bad.status_code == 200 and bad.json()["errcode"] == 40001
        assert config.secret not in line
    finally:
        process.terminate()
        process.wait(10)


def test_org_is_deterministic_nested_and_aligned():
    org = generate_org(users=500, departments=60, seed=3)
    assert json.dumps(org.users, sort_keys=True) == json.dumps(generate_org(500, 60, 3).users, sort_keys=True)
    assert json.dumps(org.users) != json.dumps(generate_org(500, 60, 4).users)
    depth = {1: 1}
    for dept_id in org.subtree(1):
        parent = org.departments[dept_id]["parentid"]
        depth[dept_id] = 1 if parent == 0 else depth[parent] + 1
    assert 3 <= max(depth.values()) <= 6
    assert {d["name"] for d in org.departments.values()} & {"总公司"}
    multi = [u for u in org.users.values() if len(u["department"]) > 1]
    assert multi, "some members belong to several departments"
    for user in org.users.values():
        assert len(user["order"]) == len(user["department"]) == len(user["is_leader_in_dept"])
        assert isinstance(user["gender"], str)
    leaders = [u for u in org.users.values() if 1 in u["is_leader_in_dept"]]
    assert leaders and all(
        u["userid"] in org.departments[d]["department_leader"]
        for u in leaders
        for d, flag in zip(u["department"], u["is_leader_in_dept"], strict=True)
        if flag
    )
    assert len({u.lower() for u in org.users}) == len(org.users)
    assert any(u["userid"] != u["userid"].lower() for u in org.users.values())


def test_new_app_mode_omits_sensitive_fields():
    with WeComSimulator(generate_org(20, 3, seed=1, new_app=True)) as sim:
        token = _token(sim.url)
        users = requests.get(
            f"{sim.url}/cgi-bin/user/list", params={"access_token": token, "department_id": 1}, timeout=5
        ).json()["userlist"]
        for dept in range(2, 4):
            users += requests.get(
                f"{sim.url}/cgi-bin/user/list",
                params={"access_token": token, "department_id": dept},
                timeout=5,
            ).json()["userlist"]
    assert users and not any(field in user for user in users for field in SENSITIVE_FIELDS)


def _token(url: str) -> str:
    config = SimulatorConfig()
    return requests.get(
        f"{url}/cgi-bin/gettoken", params={"corpid": config.corp_id, "corpsecret": config.secret}, timeout=5
    ).json()["access_token"]


def test_token_errors_lifetime_and_revocation():
    with WeComSimulator(config=SimulatorConfig(token_lifetime=1)) as sim:
        url = f"{sim.url}/cgi-bin/department/list"
        assert requests.get(url, timeout=5).json()["errcode"] == 41001
        assert requests.get(url, params={"access_token": "nope"}, timeout=5).json()["errcode"] == 40014
        token = _token(sim.url)
        assert requests.get(url, params={"access_token": token}, timeout=5).json()["errcode"] == 0
        time.sleep(1.1)
        assert requests.get(url, params={"access_token": token}, timeout=5).json()["errcode"] == 42001
        fresh = _token(sim.url)
        SimulatorAdmin(sim.url).revoke_tokens()
        assert requests.get(url, params={"access_token": fresh}, timeout=5).json()["errcode"] == 40014


def test_per_member_limit_drops_silently_and_counts():
    org = generate_org(5, 1, seed=1)
    userid = next(iter(org.users.values()))["userid"]
    with WeComSimulator(org, SimulatorConfig(time_scale=60)) as sim:
        token = _token(sim.url)
        admin = SimulatorAdmin(sim.url)
        answers = [
            requests.post(
                f"{sim.url}/cgi-bin/message/send",
                params={"access_token": token},
                timeout=5,
                json={
                    "touser": userid,
                    "msgtype": "text",
                    "agentid": 1000002,
                    "text": {"content": f"message {i}"},
                },
            ).json()["errcode"]
            for i in range(35)
        ]
        assert answers == [0] * 35  # WeCom says nothing about the drops
        stats = admin.stats()
        assert stats["delivered"] == 30 and stats["silent_drops"] == 5
        time.sleep(1.05)  # a scaled minute later the member can receive again
        requests.post(
            f"{sim.url}/cgi-bin/message/send",
            params={"access_token": token},
            timeout=5,
            json={"touser": userid, "msgtype": "text", "agentid": 1000002, "text": {"content": "again"}},
        )
        assert admin.stats()["delivered"] == 31


def test_duplicate_check_absorbs_byte_identical_requests_and_validation_codes():
    org = generate_org(5, 1, seed=1)
    userid = next(iter(org.users.values()))["userid"]
    with WeComSimulator(org) as sim:
        token = _token(sim.url)
        send = f"{sim.url}/cgi-bin/message/send?access_token={token}"
        body = {
            "touser": userid,
            "msgtype": "text",
            "agentid": 1000002,
            "text": {"content": "once"},
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 600,
        }
        first = requests.post(send, data=json.dumps(body), timeout=5).json()
        second = requests.post(send, data=json.dumps(body), timeout=5).json()
        assert first["msgid"] == second["msgid"]
        stats = SimulatorAdmin(sim.url).stats()
        assert stats["delivered"] == 1 and stats["duplicates_absorbed"] == 1
        assert requests.post(send, data=b"{not json", timeout=5).json()["errcode"] == 40058
        assert requests.post(send, json={**body, "agentid": 1}, timeout=5).json()["errcode"] == 301002
        assert requests.post(send, json={**body, "touser": ""}, timeout=5).json()["errcode"] == 82001
        assert (
            requests.post(send, json={**body, "text": {"content": ""}}, timeout=5).json()["errcode"] == 44004
        )
        too_long = {**body, "text": {"content": "字" * 683}}  # 2,049 bytes
        assert requests.post(send, json=too_long, timeout=5).json()["errcode"] == 45002


def test_org_mutations_are_visible_to_the_api():
    with WeComSimulator(generate_org(20, 4, seed=2)) as sim:
        admin = SimulatorAdmin(sim.url)
        user = next(iter(sim.state.org.users.values()))
        admin.mutate(
            {"op": "rename_department", "id": 2, "name": "新名字"},
            {"op": "move_user", "userid": user["userid"], "departments": [3]},
        )
        token = _token(sim.url)
        departments = requests.get(
            f"{sim.url}/cgi-bin/department/list", params={"access_token": token}, timeout=5
        ).json()["department"]
        assert {d["id"]: d["name"] for d in departments}[2] == "新名字"
        members = requests.get(
            f"{sim.url}/cgi-bin/user/list", params={"access_token": token, "department_id": 3}, timeout=5
        ).json()["userlist"]
        assert user["userid"] in [m["userid"] for m in members]
