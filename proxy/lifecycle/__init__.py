"""How a pyngress process starts, serves and stops: one sequence, three configurations.

Every process runs `Application.run` (application.py): the admin port when it has one (so
/healthz answers at once), the controller, the object source, then its `Serving` part until
that can serve (the first routing table is live, or every worker listens), listening, and an
announcement. SIGTERM or SIGINT: /readyz turns 503, listeners stop accepting, requests in
flight get `--shutdown-grace-period` seconds, then the process exits 0; a second signal cuts
the drain short (status 1). A background task that ends on its own (a failure) stops the
process the same way, with status 1. The three processes differ only in the parts they pass in:

    process                  control plane (control.py)     serving                   announced
    pyngress (single.py)     admin, source, stdout lines    Listeners (listeners.py)  on stdout
    --workers control        admin, source, stdout lines    WorkerPool (workers/)     on stdout
    --workers worker         none (fed by the control)      Listeners                 to the control

process.py holds what any process sets up first (exit statuses, signals, logging, the event
loop, an empty object cache); cluster.py the cluster-mode source (watch, leader election,
Ingress status, Warning Events).
"""
