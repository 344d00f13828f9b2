"""Parse and run amifleet's state machines in moto's ASL interpreter (moto 5.2.1).

Used by stepfunctions_test.go; not part of the product. Reads one JSON request on
stdin and writes one JSON answer on stdout:

  {"op": "parse", "definitions": {"pipeline": "<rendered ASL>", ...}}
    -> {"pipeline": "ok" | "<parser error>", ...}

  {"op": "run", "pipeline": "<ASL>", "teardown": "<ASL>",
   "runs": [{"name": "<execution name>", "start": "pipeline" | "teardown",
             "input": {...}, "scenario": {...}}, ...]}
    -> {"<name>": {"status", "error", "cause", "output", "states": [entered states],
                   "calls": [{"function", "errors"?}, ...],
                   "teardowns": [{"name", "input", "status"}, ...]}}  (those it started)

The Pipeline's ${TeardownStateMachineArn} must be rendered as
arn:aws:states:us-east-1:123456789012:stateMachine:Teardown, ${Partition} as aws.

In "run", every Lambda the definitions invoke is a small fake below that behaves as
the real stage does at the document level (fills its part of the document, answers
polls), so the definitions' data flow (Payload, OutputPath, Parallel ResultSelector,
Catch ResultPath, Fail ErrorPath/CausePath, intrinsics) is exercised for real. The
scenario chooses failures:
  "fail":     {"<Function>": {"errorType": "...", "times": n}}  (n: first n calls; -1 always)
  "throttle": {"<Function>": n}        first n invocations answer Lambda 429
  "readyAfter": {"<pollKey>": n}       a check is ready on its n-th poll (default 1)
  "runId": "<id>"                      the run id Validate gives (default: the execution's name)
  "startLost": {"times": n, "closed": bool}
                                       the first n states:startExecution calls start the
                                       execution but answer 500 (the answer was lost), so the
                                       state retries; with closed, the later calls answer
                                       ExecutionAlreadyExists, as when the execution that the
                                       lost call started has already ended
"""

import json
import sys
import threading
import time

from botocore.exceptions import ClientError

import moto
from moto import mock_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"


def fail(msg):
    print(json.dumps({"fatal": msg}))
    sys.exit(0)


if moto.__version__ != "5.2.1":
    fail("moto %s is installed; these tests need moto 5.2.1 (pip install 'moto[server]==5.2.1')" % moto.__version__)

from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: E402
from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (  # noqa: E402
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.backend import execution as parser_execution  # noqa: E402

# moto issue 10077 (fixed after 5.2.1): a deepcopy of the state machine reaches live
# executions and fails to pickle their locks, so every execution after the first
# answers 500. An execution is not data to copy.
parser_execution.Execution.__deepcopy__ = lambda self, memo: self

# moto issue 10076 (open for 5.2.1): the states:startExecution integration passes the
# ASL's PascalCase parameters (StateMachineArn, Name, Input) to boto3, whose members
# are lowerCamel, and fails with States.Runtime. Lower the first letter, as AWS does.
_sfn_normalise = StateTaskServiceSfn._normalise_parameters


def _sfn_normalise_lower_camel(self, parameters, boto_service_name=None, service_action_name=None):
    _sfn_normalise(self, parameters, boto_service_name=boto_service_name, service_action_name=service_action_name)
    for key in list(parameters):
        parameters[key[:1].lower() + key[1:]] = parameters.pop(key)


StateTaskServiceSfn._normalise_parameters = _sfn_normalise_lower_camel

# The scenario's "startLost": set by run() for each execution.
_start_lost = {"times": 0, "closed": False, "count": 0}
_sfn_eval_service_task = StateTaskServiceSfn._eval_service_task


def _sfn_eval_service_task_lost(self, env, resource_runtime_part, normalised_parameters, state_credentials):
    _start_lost["count"] += 1
    if _start_lost["count"] > _start_lost["times"]:
        if _start_lost["closed"]:
            # What StartExecution answers once the execution of that name has closed
            # (moto 5.2.1 cannot stop one its interpreter runs: StopExecution fails).
            raise ClientError({"Error": {"Code": "ExecutionAlreadyExists", "Message": "Execution Already Exists (injected: closed)"},
                               "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "r"}}, "StartExecution")
        return _sfn_eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials)
    _sfn_eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials)
    env.stack.pop()
    raise ClientError({"Error": {"Code": "AWSStepFunctions", "Message": "injected: the answer to a start that happened was lost"},
                       "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": "r"}}, "StartExecution")


StateTaskServiceSfn._eval_service_task = _sfn_eval_service_task_lost


def parse(req):
    out = {}
    for name, definition in req["definitions"].items():
        try:
            StaticAnalyser().analyse(definition)
            out[name] = "ok"
        except Exception as e:  # the parser raises several types; report any
            out[name] = "%s: %s" % (type(e).__name__, e)
    return out


class Fakes:
    """Document-level stand-ins for the stage Lambdas."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.calls = []
        self.count = {}
        self.lock = threading.Lock()

    def invoke(self, parameters, region, state_credentials):
        fn = parameters["FunctionName"].rsplit(":", 1)[-1]
        payload = json.loads(parameters["Payload"])
        with self.lock:
            n = self.count.get(fn, 0) + 1
            self.count[fn] = n
            call = {"function": fn}
            if isinstance(payload, dict) and payload.get("errors"):
                call["errors"] = payload["errors"]
            self.calls.append(call)
        throttle = self.scenario.get("throttle", {}).get(fn, 0)
        if n <= throttle:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                               "ResponseMetadata": {"HTTPStatusCode": 429, "RequestId": "r"}}, "Invoke")
        f = self.scenario.get("fail", {}).get(fn)
        if f and (f["times"] < 0 or n - throttle <= f["times"]):
            body = {"errorType": f["errorType"], "errorMessage": "%s: injected %s" % (fn, f["errorType"])}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": body}
        return {"StatusCode": 200, "Payload": getattr(self, fn)(payload)}

    def poll(self, doc, key, state):
        polls = doc.setdefault("polls", {})
        attempts = polls.get(key, {}).get("attempts", 0) + 1
        ready = attempts >= self.scenario.get("readyAfter", {}).get(key, 1)
        poll = doc.get("config", {}).get("poll", {})
        wait = poll.get("intervalSeconds", 0)
        if attempts == 1:
            wait = poll.get("firstWaitSeconds", {}).get(key) or wait
        polls[key] = {"ready": ready, "state": state if ready else "pending",
                      "reason": "%s after %d polls" % ("ready" if ready else "not yet", attempts),
                      "attempts": attempts, "waitSeconds": wait}
        return doc

    def Validate(self, p):
        inp = p["input"]
        if not isinstance(inp, dict) or "bad" in inp:
            return_error = {"errorType": "BadInputError", "errorMessage": "bad input: bad: unknown field"}
            raise _LambdaError(return_error)
        config = {"poll": {"intervalSeconds": 0, "maxPolls": {k: 3 for k in
                  ("baseStopped", "imageAvailable", "loadBalancerActive", "instancesRunning", "targetsHealthy", "cleanupDone")}}}
        config.update(inp)
        return {"runId": self.scenario.get("runId", p["executionName"]), "config": config, "resources": {}}

    def CreateSecurityGroups(self, d):
        d["resources"]["network"] = {"vpcId": "vpc-1", "subnetIds": ["subnet-1", "subnet-2"],
                                     "albSecurityGroupId": "sg-1", "instanceSecurityGroupId": "sg-2"}
        return d

    def LaunchBase(self, d):
        d["resources"]["image"] = {"baseInstanceId": "i-base"}
        return d

    def CheckBaseStopped(self, d):
        return self.poll(d, "baseStopped", "stopped")

    def CreateImage(self, d):
        d["resources"]["image"]["imageId"] = "ami-1"
        return d

    def CheckImageAvailable(self, d):
        return self.poll(d, "imageAvailable", "available")

    def CreateLoadBalancer(self, d):
        d["resources"]["loadBalancer"] = {"targetGroupArn": "tg", "loadBalancerArn": "alb", "dnsName": "alb.example"}
        return d

    def CheckLoadBalancerActive(self, d):
        return self.poll(d, "loadBalancerActive", "active")

    def LaunchReplicas(self, d):
        d["resources"]["fleet"] = {"replicaInstanceIds": ["i-1", "i-2"], "instanceIds": ["i-base", "i-1", "i-2"]}
        return d

    def CheckInstancesRunning(self, d):
        return self.poll(d, "instancesRunning", "running")

    def RegisterTargets(self, d):
        return d

    def CheckTargetsHealthy(self, d):
        return self.poll(d, "targetsHealthy", "healthy")

    def Verify(self, d):
        d["resources"]["verify"] = {"status": "skipped", "requests": 0}
        return d

    def RecordRun(self, d):
        d["recorded"] = True
        return d

    def Cleanup(self, d):
        if not d.get("runId"):
            raise _LambdaError({"errorType": "BadInputError", "errorMessage": "bad input: runId: empty"})
        d.setdefault("config", {"poll": {"intervalSeconds": 1, "maxPolls": {"cleanupDone": 3}}})
        errors = d.get("errors") or {}
        if errors:
            stage, caught = sorted(errors.items())[0]
            d["error"] = {"stage": stage, "type": caught["Error"], "message": caught["Cause"],
                          "cause": "%s failed: %s: %s" % (stage, caught["Error"], caught["Cause"])}
        if d.get("kept"):
            # A kept run: the failure is recorded, nothing is deleted.
            d["error"]["cause"] += " (resources kept, Teardown %s)" % d["kept"]["teardown"]
            d.setdefault("polls", {})["cleanupDone"] = {"ready": True, "state": "kept", "attempts": 1}
            return d
        return self.poll(d, "cleanupDone", "deleted")


class _LambdaError(Exception):
    def __init__(self, body):
        self.body = body


def run(req):
    """Runs each of req["runs"] in turn, in one moto: {name, start, input, scenario}."""
    fakes = Fakes({})

    def invoke(parameters, region, state_credentials):
        try:
            return fakes.invoke(parameters, region, state_credentials)
        except _LambdaError as e:
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": e.body}

    lambda_eval_utils._invoke_lambda_function = invoke

    import boto3
    results = {}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        role = "arn:aws:iam::%s:role/sfn" % ACCOUNT
        td = sfn.create_state_machine(name="Teardown", definition=req["teardown"], roleArn=role)["stateMachineArn"]
        sm = sfn.create_state_machine(name="Pipeline", definition=req["pipeline"], roleArn=role)["stateMachineArn"]
        for r in req["runs"]:
            fakes.__init__(r.get("scenario", {}))
            lost = r.get("scenario", {}).get("startLost", {})
            _start_lost.update(times=lost.get("times", 0), closed=lost.get("closed", False), count=0)
            arn = td if r.get("start") == "teardown" else sm
            ex = sfn.start_execution(stateMachineArn=arn, name=r["name"], input=json.dumps(r.get("input", {})))["executionArn"]
            out = wait(sfn, ex)
            out["calls"] = fakes.calls
            out["teardowns"] = []
            for child in sfn.list_executions(stateMachineArn=td)["executions"]:
                # Not waited for: it starts with the run's time to live.
                d = sfn.describe_execution(executionArn=child["executionArn"])
                inp = json.loads(d["input"])
                if arn == sm and inp.get("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID") == ex:
                    out["teardowns"].append({"name": d["name"], "input": inp, "status": d["status"]})
            results[r["name"]] = out
    return results


def wait(sfn, ex):
    deadline = time.time() + 120
    while True:
        d = sfn.describe_execution(executionArn=ex)
        if d["status"] != "RUNNING":
            break
        if time.time() > deadline:
            return {"status": "STILL_RUNNING"}
        time.sleep(0.1)
    states = []
    for e in sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]:
        details = e.get("stateEnteredEventDetails")
        if details:
            states.append(details["name"])
    out = {"status": d["status"], "states": states,
           "error": d.get("error", ""), "cause": d.get("cause", "")}
    if "output" in d:
        out["output"] = json.loads(d["output"])
    return out


def main():
    req = json.load(sys.stdin)
    if req["op"] == "parse":
        res = parse(req)
    else:
        res = run(req)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
