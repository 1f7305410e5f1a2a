"""Work across targets: the calls a command will make (for permission checks), `aws smoke`,
and finding llmship-tagged resources.

    planned_calls.py  the AWS operations each command makes, for `aws check`
    smoke.py          `llmship aws smoke`: one real create/invoke/destroy round
    discover.py       `status --discover`: tagged resources the state store lacks

The targets themselves live in llmship.targets, one folder each; the plan -> show ->
confirm -> apply flow they share is `llmship.target.carry_out`.
"""
