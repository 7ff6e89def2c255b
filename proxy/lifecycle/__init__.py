"""How a pyngress process starts, serves and stops: one sequence, three configurations.

Every process runs `Application.run` (application.py): the admin port when it has one (so
/healthz answers at once), the controller, the object source, then a `Serving` part until it
can serve, listening, an announcement; on a signal or a failed background task, it stops
serving (draining) and closes everything in reverse. The three processes differ only in the
parts they pass in:

    process                  control plane (control.py)     serving                   announced
    pyngress (single.py)     admin, source, stdout lines    Listeners (listeners.py)  stdout line
    --workers control        admin, source, stdout lines    WorkerPool (workers/)     stdout line
    --workers worker         none (fed by the control)      Listeners                 to the control

process.py holds what any process needs before that (signals, logging, the event loop, exit
codes) and cluster.py the cluster-mode source (watch, leader election, status, Events).
"""
