// Test-only driver for @cloud-copilot/iam-simulate (AGPL-3.0; never shipped
// or linked into a binary). One node process evaluates a whole batch.
//
// stdin, JSON Lines, one case a line:
//   {id, policy, principal, action, resource, context: {key: string | [string]}}
// policy is the key policy (the resource policy of the request). The
// principal gets an allow-all identity policy, so only the key policy
// decides; the resource account is the key ARN's account (its fifth field).
//
// stdout, JSON Lines, one answer per case in input order:
//   {id, decision: "Allow" | "ImplicitDeny" | "ExplicitDeny", raw}
// raw is iam-simulate's own resource-policy result; a case iam-simulate
// cannot evaluate comes back as {id, error} instead.
import { createInterface } from 'node:readline'
import { runSimulation } from '@cloud-copilot/iam-simulate'

const allowAll = {
  name: 'allow-all',
  policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
}

// iam-simulate's ResourceEvaluationResult, reduced to the three outcomes.
// "…ForAccount" means a statement named the principal's account (its root
// or id) rather than the principal itself: for the key-policy decision
// that statement applies to the principal (AWS: naming an account in a
// resource policy covers every principal of the account, subject to IAM).
function decision(result) {
  switch (result) {
    case 'Allowed':
    case 'AllowedForAccount':
      return 'Allow'
    case 'ExplicitlyDenied':
    case 'DeniedForAccount':
      return 'ExplicitDeny'
    case 'ImplicitlyDenied':
    case 'NotApplicable':
      return 'ImplicitDeny'
    default:
      return undefined
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  const c = JSON.parse(line)
  const simulation = {
    request: {
      principal: c.principal,
      action: c.action,
      resource: { resource: c.resource, accountId: c.resource.split(':')[4] },
      contextVariables: c.context ?? {},
    },
    identityPolicies: [allowAll],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: c.policy,
  }
  let out
  try {
    const r = await runSimulation(simulation, {})
    const raw = r.result?.analysis?.resourceAnalysis?.result
    if (r.errors) {
      out = { id: c.id, error: JSON.stringify(r.errors) }
    } else if (decision(raw) === undefined) {
      out = { id: c.id, error: `no resource-policy result (${raw})` }
    } else {
      out = { id: c.id, decision: decision(raw), raw }
    }
  } catch (e) {
    out = { id: c.id, error: String(e) }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}
