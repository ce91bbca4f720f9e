"""The Augur operators (kopf): ``DecisionService`` and ``TuningJob``.

Thin adapters: they read, apply and record; what to apply and what the status says is
computed by ``augur.cluster``. Run with ``augur operator run`` or
``kopf run -m operators.main --all-namespaces``.
"""
