"""amifleet's launcher for moto's server (moto 5.2.1 exactly).

It does what `moto_server -p PORT` does, after changes that must happen before
anything is created: Step Functions executes state machines (moto's ASL
interpreter), Lambda does not use Docker (there is none; the gateway answers
Invoke), and the bugs of moto 5.2.1 that amifleet meets are worked around, one
function each, named after the upstream issue.

It prints one line, "amifleet-moto listening on HOST:PORT", once the socket is
bound (port 0 picks a free one), then serves until SIGTERM or SIGINT.

Run by internal/localcloud/moto.go; stdout and stderr are the server's log.
"""

import argparse
import importlib.metadata
import os
import signal
import sys

SUPPORTED_MOTO = "5.2.1"


def check_version():
    version = importlib.metadata.version("moto")
    if version != SUPPORTED_MOTO:
        sys.exit(
            f"moto {version} is installed; amifleet supports exactly {SUPPORTED_MOTO}: "
            f'pip install "moto[server]=={SUPPORTED_MOTO}"'
        )


def configure():
    # Same as POST /moto-api/config, done before the first request so that no
    # state machine or function is ever created in the other backends.
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.set_config(
        {
            "stepfunctions": {"execute_state_machine": True},
            "lambda": {"use_docker": False},
        }
    )


def workaround_moto_issue_10077():
    """moto issue 10077 (fixed upstream after 5.2.1).

    StartExecution deep-copies the state machine, and the copy reaches the
    executions already started, whose workers hold locks: every StartExecution
    after the first in an account/region answers 500 "cannot pickle
    '_thread.RLock' object". An execution is a live object, never a value to
    copy, so a deep copy shares it.
    """
    from moto.stepfunctions.parser.backend.execution import Execution

    Execution.__deepcopy__ = lambda self, memo: self


def workaround_cloudformation_backends():
    """CloudFormation writes into moto's default backends (moto 5.2.1).

    With execute_state_machine and use_docker=False the Step Functions and Lambda
    APIs read stepfunctions_parser_backends and lambda_simple_backends, but the
    CloudFormation resource models still look up the module-level
    stepfunctions_backends and lambda_backends: a stack's state machines and
    functions are created where the API cannot see them
    (DescribeStateMachine: StateMachineDoesNotExist). Pointing those names at the
    backends the config selects makes both paths share one store.
    """
    import moto.awslambda.models
    import moto.stepfunctions.models
    from moto.awslambda_simple.models import lambda_simple_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    moto.stepfunctions.models.stepfunctions_backends = stepfunctions_parser_backends
    moto.awslambda.models.lambda_backends = lambda_simple_backends


def workaround_create_image_snapshot_tags():
    """CreateImage refuses a "snapshot" TagSpecification (moto 5.2.1).

    moto PR 3604 (for issue 3602) implemented CreateImage's TagSpecifications for
    the image only; a "snapshot" one raises NotImplementedError, a 500 to the
    client. AWS tags the image's snapshots with it, and amifleet relies on that to
    find a run's snapshots by tag. Here the snapshot specifications are taken out
    of the call, and their tags put on the snapshot moto makes for the image.
    """
    from moto.ec2.models.amis import AmiBackend

    create_image = AmiBackend.create_image

    def create_image_tagging_snapshots(self, instance_id, name, description, tag_specifications):
        snapshot_tags = {}
        others = []
        for spec in tag_specifications or []:
            if spec.get("ResourceType") == "snapshot":
                for tag in spec.get("Tags", []):
                    snapshot_tags[tag["Key"]] = tag["Value"]
            else:
                others.append(spec)
        ami = create_image(self, instance_id, name, description, others)
        if snapshot_tags:
            self.create_tags([ami.ebs_snapshot.id], snapshot_tags)
        return ami

    AmiBackend.create_image = create_image_tagging_snapshots


def workaround_moto_issue_10076():
    """states:startExecution fails with States.Runtime 'StateMachineArn' (moto 5.2.1).

    moto issue 10076: the Step Functions service integration hands the ASL's
    PascalCase parameters (StateMachineArn, Name, Input) to boto3, whose members are
    lowerCamel. The Pipeline's ScheduleTeardown state (a run's time to live) uses that
    integration. Lower the first letter of each key, as AWS's own mapping does.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    normalise = StateTaskServiceSfn._normalise_parameters

    def normalise_lower_camel(self, parameters, boto_service_name=None, service_action_name=None):
        normalise(self, parameters, boto_service_name=boto_service_name, service_action_name=service_action_name)
        for key in list(parameters):
            parameters[key[:1].lower() + key[1:]] = parameters.pop(key)

    StateTaskServiceSfn._normalise_parameters = normalise_lower_camel


def serialise_dynamodb():
    """DynamoDB's conditional writes race in moto's threaded server (moto 5.2.1).

    DynamoDB serialises the writes to an item, so of two conditional writes that
    both read the item before either wrote, exactly one condition holds. moto's
    DynamoDB takes no lock: each request reads the item, evaluates the condition and
    writes in its own server thread, and two threads can both pass the condition
    (amifleet's run record is a lock taken with one). One lock around every DynamoDB
    request makes each one whole, as an item's writes are on AWS; the other
    services keep their threads.
    """
    import functools
    import threading

    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    @functools.wraps(call_action)
    def call_action_serialised(self):
        with lock:
            return call_action(self)

    DynamoHandler.call_action = call_action_serialised


def scale_waits(scale):
    """Executions wait on the local cloud's scaled clock (not a moto bug).

    With a latency model, AWS's durations pass at `scale` local seconds per AWS
    second (localcloud's TimeScale); the definitions' Wait states and Retry
    intervals are AWS seconds too, so they wait that much less. A Wait's seconds
    are whole in ASL: scaled, they need not be, so a 5 s Wait at 0.2 waits 1 s
    here, as 5 s of AWS time. Done by deadline, so that an unrelated wake-up of
    the execution's event does not end the wait early.
    """
    if scale == 1:
        return
    import time
    import types

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    def wait_interval(self, env, wait_seconds):
        deadline = time.monotonic() + wait_seconds * scale
        while env.is_running():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            env.program_state_event.wait(left)

    WaitFunction._wait_interval = wait_interval
    retrier_decl.time = types.SimpleNamespace(sleep=lambda seconds: time.sleep(seconds * scale))


def serve(host, port):
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server: tracebacks in 500 answers help debugging
    server = make_server(host, port, app, threaded=True)
    # The Step Functions interpreter calls Lambda at localhost:$MOTO_PORT. The Go
    # side sets it to the gateway's port when there is one; otherwise it is us.
    os.environ.setdefault("MOTO_PORT", str(server.server_port))
    print(f"amifleet-moto listening on {host}:{server.server_port}", flush=True)
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--wait-scale", type=float, default=1.0,
                        help="local seconds per second of a Wait state or a Retry interval")
    args = parser.parse_args()
    if not 0 < args.wait_scale <= 1:
        sys.exit(f"--wait-scale {args.wait_scale}: must be in (0, 1]")

    def stop(signum, frame):
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    check_version()
    configure()
    workaround_moto_issue_10077()
    workaround_cloudformation_backends()
    workaround_create_image_snapshot_tags()
    workaround_moto_issue_10076()
    serialise_dynamodb()
    scale_waits(args.wait_scale)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
