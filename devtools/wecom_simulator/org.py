"""A deterministic, realistic WeCom org: nested departments, multi-department members, leaders."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 6
SENSITIVE_FIELDS = ("mobile", "gender", "email", "biz_mail", "avatar", "thumb_avatar", "qr_code", "address")

_SURNAMES = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
]
_GIVEN = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("婷", "ting"),
]
_ENGLISH = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kate", "Leo"]
_UNITS = [
    ("研发", "Engineering"),
    ("产品", "Product"),
    ("设计", "Design"),
    ("测试", "QA"),
    ("数据", "Data"),
    ("运维", "Operations"),
    ("市场", "Marketing"),
    ("销售", "Sales"),
    ("人力资源", "People"),
    ("财务", "Finance"),
    ("法务", "Legal"),
    ("客户成功", "Customer Success"),
    ("招聘", "Recruiting"),
]
_SUFFIXES = [("部", "Dept"), ("中心", "Center"), ("组", "Team"), ("小组", "Squad")]
_POSITIONS = [
    "工程师",
    "高级工程师",
    "技术专家",
    "产品经理",
    "设计师",
    "测试工程师",
    "HRBP",
    "招聘经理",
    "Engineer",
]


@dataclass
class Org:
    """Departments and members as WeCom returns them (plain dicts in wire format)."""

    departments: dict[int, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # keyed by lowercased userid
    new_app: bool = False  # apps created after 2022-06-20 get no sensitive fields
    _index: dict[int, list[str]] | None = field(default=None, repr=False)

    def changed(self) -> None:
        """Call after any mutation so the membership index is rebuilt."""
        self._index = None

    def led(self, keys: set[str]) -> dict[str, frozenset[int]]:
        """The departments each of these members (lowercased userids) leads, by ``is_leader_in_dept``."""
        return {
            key: frozenset(
                d for d, flag in zip(u["department"], u["is_leader_in_dept"], strict=False) if flag
            )
            for key, u in ((k, self.users[k]) for k in keys if k in self.users)
        }

    def touched_by(self, op: dict[str, Any]) -> set[str]:
        """The members (lowercased userids) whose leader flags one admin change can alter."""
        if op["op"] == "set_leader":
            return {u["userid"].lower() for u in self.members_of(int(op["department_id"]))}
        return {str(op.get(name, "")).lower() for name in ("userid", "new_userid") if op.get(name)}

    def replace_leader(self, userid: str, new_userid: str | None = None) -> None:
        """A member who left or stopped leading leaves every ``department_leader`` list (or, with
        ``new_userid``, is listed under the new spelling), as WeCom keeps them."""
        for dept in self.departments.values():
            leaders = dept.get("department_leader") or []
            if any(u.lower() == userid.lower() for u in leaders):
                dept["department_leader"] = [
                    (new_userid if u.lower() == userid.lower() else u)
                    for u in leaders
                    if new_userid or u.lower() != userid.lower()
                ]

    def members_of(self, department_id: int) -> list[dict[str, Any]]:
        if self._index is None:
            index: dict[int, list[str]] = {}
            for key, user in self.users.items():
                for dept_id in user["department"]:
                    index.setdefault(dept_id, []).append(key)
            self._index = index
        return [self.users[key] for key in self._index.get(department_id, [])]

    def subtree(self, department_id: int) -> list[int]:
        """The department and all its descendants, parents before children."""
        children: dict[int, list[int]] = {}
        for dept in self.departments.values():
            children.setdefault(dept["parentid"], []).append(dept["id"])
        out, stack = [], [department_id]
        while stack:
            current = stack.pop()
            if current in self.departments:
                out.append(current)
                stack.extend(sorted(children.get(current, []), reverse=True))
        return out

    def wire_user(self, user: dict[str, Any]) -> dict[str, Any]:
        if not self.new_app:
            return user
        return {k: v for k, v in user.items() if k not in SENSITIVE_FIELDS}


def generate_org(users: int = 200, departments: int = 20, seed: int = 1, new_app: bool = False) -> Org:
    """A reproducible org: the same arguments give the same org, byte for byte."""
    if departments < 1:
        raise ValueError("an org needs at least the root department")
    rng = random.Random(seed)
    org = Org(new_app=new_app)
    org.departments[1] = {
        "id": 1,
        "name": "总公司",
        "name_en": "Headquarters",
        "parentid": 0,
        "order": 100000000,
        "department_leader": [],
    }
    depth = {1: 1}
    for dept_id in range(2, departments + 1):
        candidates = [d for d in depth if depth[d] < MAX_DEPTH]
        # Prefer shallow parents, but let some branches grow to the full depth.
        parent = rng.choice(candidates[-8:]) if rng.random() < 0.35 else rng.choice(candidates)
        depth[dept_id] = depth[parent] + 1
        unit_cn, unit_en = rng.choice(_UNITS)
        suffix_cn, suffix_en = _SUFFIXES[min(depth[dept_id] - 2, len(_SUFFIXES) - 1)]
        org.departments[dept_id] = {
            "id": dept_id,
            "name": f"{unit_cn}{suffix_cn}{dept_id}",
            "name_en": f"{unit_en} {suffix_en} {dept_id}",
            "parentid": parent,
            "order": rng.randrange(0, 2**32),
            "department_leader": [],
        }

    dept_ids = list(org.departments)
    for index in range(1, users + 1):
        surname_cn, surname_py = rng.choice(_SURNAMES)
        given_cn, given_py = rng.choice(_GIVEN)
        userid = f"{surname_py}{given_py}{index}"
        if rng.random() < 0.2:  # WeCom userids keep their case but are unique case-insensitively
            userid = userid[0].upper() + userid[1:]
        main = rng.choice(dept_ids)
        member_of = [main]
        if rng.random() < 0.1:
            member_of += rng.sample(dept_ids, k=min(len(dept_ids), rng.randint(1, 2)))
        member_of = list(dict.fromkeys(member_of))
        user: dict[str, Any] = {
            "userid": userid,
            "name": f"{surname_cn}{given_cn}",
            "department": member_of,
            "order": [rng.randrange(0, 2**32) for _ in member_of],
            "is_leader_in_dept": [0 for _ in member_of],
            "position": rng.choice(_POSITIONS),
            "direct_leader": [],
            "main_department": main,
            "status": 1 if rng.random() < 0.95 else rng.choice([2, 4]),
            "alias": "",
            "telephone": "",
            "english_name": f"{rng.choice(_ENGLISH)} {surname_py.title()}",
            "extattr": {"attrs": [{"type": 0, "name": "工号", "text": {"value": f"E{index:06d}"}}]},
            "mobile": f"13{rng.randrange(100000000, 999999999)}",
            "gender": rng.choice(["0", "1", "2"]),
            "email": f"{userid.lower()}@example.com",
            "biz_mail": f"{userid.lower()}@corp.example.com",
            "avatar": f"https://wework.example.com/avatar/{index}/0",
            "thumb_avatar": f"https://wework.example.com/avatar/{index}/100",
            "qr_code": f"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode={index:08x}",
            "address": f"上海市徐汇区示例路{index % 300 + 1}号",
        }
        org.users[userid.lower()] = user

    # One leader per department that has members; leaders are members of that department.
    members: dict[int, list[dict[str, Any]]] = {}
    for user in org.users.values():
        for dept_id in user["department"]:
            members.setdefault(dept_id, []).append(user)
    for dept_id, people in members.items():
        leader = rng.choice(people)
        org.departments[dept_id]["department_leader"] = [leader["userid"]]
        leader["is_leader_in_dept"][leader["department"].index(dept_id)] = 1
    for user in org.users.values():
        leaders = org.departments[user["main_department"]]["department_leader"]
        user["direct_leader"] = [uid for uid in leaders if uid != user["userid"]]
    return org
