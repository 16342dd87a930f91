"""Who sees what: sandbox ownership and template visibility rules."""

from agent_sandbox.operator.api.handlers.templates import visible
from agent_sandbox.operator.api.sandbox_access import namespace_scope, owns
from agent_sandbox.operator.auth.identity import ADMIN, AuthMethod, Identity, Role

ALICE = Identity("default", Role.TENANT, "alice", "red", AuthMethod.API_KEY)
BOB = Identity("default", Role.TENANT, "bob", "red", AuthMethod.API_KEY)


def test_tenants_own_only_their_sandboxes_even_in_a_shared_namespace():
    record = {"namespace": "default", "team": "red", "user": "alice"}
    assert owns(ALICE, record) and not owns(BOB, record) and owns(ADMIN, record)
    assert not owns(ALICE, {**record, "namespace": "other"})
    assert namespace_scope(ALICE) == "default" and namespace_scope(ADMIN) is None


def test_template_visibility_rules():
    open_tpl = {"spec": {}}
    team_tpl = {"spec": {"visibility": {"rules": [{"team": "red"}]}}}
    user_tpl = {"spec": {"visibility": {"rules": [{"team": "red", "users": ["bob"]}]}}}
    assert visible(open_tpl, ALICE) and visible(team_tpl, ALICE)
    assert not visible(user_tpl, ALICE) and visible(user_tpl, BOB) and visible(user_tpl, ADMIN)
    blue = Identity("default", Role.TENANT, "carol", "blue", AuthMethod.API_KEY)
    assert not visible(team_tpl, blue)
