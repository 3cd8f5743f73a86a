# Medians and spread per (scenario, variant) of an ab.sh result file.
import json,sys,statistics as st
rows=[json.loads(l) for l in open(sys.argv[1])]
from collections import defaultdict
g=defaultdict(list)
for r in rows:
    if r['result'] is None: print("NULL", r['scenario'], r['variant']); continue
    g[(r['scenario'],r['variant'])].append(r['result'])
def med(xs): xs=[x for x in xs if x is not None]; return round(st.median(xs),3) if xs else None
for (s,v),rs in sorted(g.items()):
    if s=='fanout':
        keys=[('deliveries/cpu-s',lambda r:r.get('deliveries_per_server_cpu_s')),('call p50',lambda r:(r.get('call') or r.get('call_completion') or {}).get('p50_ms')),('call p99',lambda r:(r.get('call') or r.get('call_completion') or {}).get('p99_ms'))]
    else:
        keys=[('acc/cpu-s',lambda r:r['rest'].get('per_server_cpu_s')),('acc/s',lambda r:r['rest'].get('per_s')),('rest p50',lambda r:r['rest']['latency']['p50_ms'] if 'latency' in r['rest'] else r['rest'].get('p50_ms')),('rest p99',lambda r:r['rest']['latency']['p99_ms'] if 'latency' in r['rest'] else r['rest'].get('p99_ms')),('e2e p50',lambda r:r['e2e']['p50_ms']),('e2e p99',lambda r:r['e2e']['p99_ms']),('lost',lambda r:r['deliveries'].get('missing') if isinstance(r.get('deliveries'),dict) else None)]
    out=[]
    for k,f in keys:
        vals=[]
        for r in rs:
            try: vals.append(f(r))
            except Exception as e: vals.append(None)
        out.append(f"{k}={med(vals)} {vals}")
    print(s,v,len(rs),' | '.join(out))
