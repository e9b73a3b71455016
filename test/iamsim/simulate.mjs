// Reads JSON Lines cases on stdin and prints, for each, the decision of
// @cloud-copilot/iam-simulate on the key-policy part of the request.
//
// A case: {id, policy, principal, action, resource, resourceAccount, context}.
// The principal gets an allow-all identity policy, so only the key policy
// decides; its resourceAnalysis is reported.
import { createInterface } from 'node:readline'
import { runSimulation } from '@cloud-copilot/iam-simulate'

const allowAll = { name: 'allow-all', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }

function decision(result) {
  switch (result) {
    case 'Allowed':
    case 'AllowedForAccount':
      return 'Allow'
    case 'ExplicitlyDenied':
    case 'DeniedForAccount':
      return 'ExplicitDeny'
    default:
      return 'ImplicitDeny'
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
      resource: { resource: c.resource, accountId: c.resourceAccount },
      contextVariables: c.context,
    },
    identityPolicies: [allowAll],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: c.policy,
  }
  let out
  try {
    const r = await runSimulation(simulation, {})
    if (r.errors) {
      out = { id: c.id, error: JSON.stringify(r.errors) }
    } else {
      const analysis = r.result?.analysis
      out = { id: c.id, decision: decision(analysis?.resourceAnalysis?.result), raw: analysis?.resourceAnalysis?.result }
    }
  } catch (e) {
    out = { id: c.id, error: String(e) }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}
