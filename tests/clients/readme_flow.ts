// The README's first calls through a client generated from /openapi.json: create a campaign, read it back.
// tests/test_clients.py generates ./schema.d.ts, checks this file with `tsc --noEmit`, then runs it.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const client = createClient<paths>({ baseUrl: process.env.GATEWAY_URL });
const headers = { Authorization: `Bearer ${process.env.GATEWAY_KEY}`, "X-Connection": "hamsa-sandbox" };

const created = await client.POST("/v1/campaigns", {
  headers,
  body: {
    name: "Q1 outreach",
    agent_id: "68f7656f-098b-4c43-b165-7cfd2cc8ac40",
    from_number: "+14155551212",
    recipients: [{ phone_number: "+14155550100", name: "Ada" }],
    schedule: { timezone: "America/New_York", days: ["monday", "tuesday"], daily_start: "09:00", daily_end: "17:00" },
    max_concurrent_calls: 5,
  },
});
if (!created.data) throw new Error(`create failed: ${created.response.status} ${JSON.stringify(created.error)}`);
const fetched = await client.GET("/v1/campaigns/{id}", { headers, params: { path: { id: created.data.id } } });
if (!fetched.data) throw new Error(`get failed: ${fetched.response.status}`);
console.log(JSON.stringify({ created: created.data, fetched: fetched.data }));
