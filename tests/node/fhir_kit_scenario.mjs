// fhir-kit-client, unchanged, against a real `dmp serve`. Driven by
// tests/integration/test_client_fhir_kit.py, which gives the server, the token, a record and an
// ITI-65 Bundle in the environment, and checks the JSON report this prints.
import fs from 'node:fs';
import { Client } from 'fhir-kit-client';

async function main() {
  const env = process.env;
  const client = new Client({ baseUrl: env.DMP_FHIR, bearerToken: env.DMP_TOKEN });
  const report = {};
  const byIdentifier = { 'patient.identifier': env.DMP_IDENTIFIER, _count: 2 };

  // search, then nextPage until the server gives no `next` link
  let page = await client.search({ resourceType: 'DocumentReference', searchParams: byIdentifier });
  report.total = page.total;
  report.pageSizes = [];
  const ids = [];
  while (page) {
    report.pageSizes.push((page.entry || []).length);
    for (const e of page.entry || []) ids.push(e.resource.id);
    page = await client.nextPage({ bundle: page });
  }
  report.ids = ids;

  // the same search in a form body (POST [type]/_search): no INS in the URL
  const posted = await client.resourceSearch({
    resourceType: 'DocumentReference', searchParams: byIdentifier, options: { postSearch: true },
  });
  report.postedTotal = posted.total;

  // read, vread of the version the server reports
  const doc = await client.read({ resourceType: 'DocumentReference', id: ids[0] });
  report.readId = doc.id;
  const version = await client.vread({ resourceType: 'DocumentReference', id: ids[0], version: doc.meta.versionId });
  report.vreadSameDocument = version.masterIdentifier.value === doc.masterIdentifier.value;

  // transaction: an ITI-65 publication
  const bundle = JSON.parse(fs.readFileSync(env.DMP_BUNDLE_FILE, 'utf8'));
  const response = await client.transaction({ body: bundle });
  report.transactionType = response.type;
  report.transactionStatuses = response.entry.map((e) => e.response.status);

  // patch (JSON Patch): the author declares a document entered in error
  const patched = await client.patch({
    resourceType: 'DocumentReference',
    id: ids[ids.length - 1],
    jsonPatch: [{ op: 'replace', path: '/status', value: 'entered-in-error' }],
  });
  report.patchedStatus = patched.status;
  report.patchedVersion = patched.meta.versionId;

  // a read of an unknown id rejects with the server's OperationOutcome
  try {
    await client.read({ resourceType: 'DocumentReference', id: '00000000-0000-4000-8000-000000000000' });
    report.unknown = 'found';
  } catch (err) {
    report.unknown = { status: err.response && err.response.status, type: err.response && err.response.data && err.response.data.resourceType };
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((err) => {
  const detail = err.response ? { status: err.response.status, data: err.response.data } : String(err.stack || err);
  process.stderr.write(JSON.stringify(detail));
  process.exit(1);
});
