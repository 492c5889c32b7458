#!/usr/bin/env python3
# 1 Hz: disk, dirty pages, PSI, CPU per process kind, the repair's I/O. CSV on stdout.
import os, time, sys
HZ = os.sysconf('SC_CLK_TCK')
def kind(cmd):
    if 'kafka.Kafka' in cmd: return 'kafka'
    if 'clickhouse' in cmd: return 'clickhouse'
    if 'tollgate' in cmd:
        for k in ('repair','ingest','process','sink','audit'):
            if f' {k}' in cmd: return k
        return 'tollgate'
    if 'deploy/bench' in cmd or '/exe/bench' in cmd: return 'bench'
    return None
def procs():
    out = {}
    for p in os.listdir('/proc'):
        if not p.isdigit(): continue
        try:
            cmd = open(f'/proc/{p}/cmdline','rb').read().replace(b'\0',b' ').decode(errors='replace')
        except OSError: continue
        k = kind(cmd)
        if k: out[int(p)] = k
    return out
def cpu(pid):
    try:
        f = open(f'/proc/{pid}/stat').read().rsplit(')',1)[1].split()
        return (int(f[11])+int(f[12]))/HZ
    except OSError: return None
def io(pid):
    d = {}
    try:
        for l in open(f'/proc/{pid}/io'):
            k,v = l.split(':'); d[k]=int(v)
    except OSError: pass
    return d.get('read_bytes',0), d.get('write_bytes',0)
def disk():
    for l in open('/proc/diskstats'):
        f = l.split()
        if f[2]=='vda': return int(f[5]), int(f[9]), int(f[12])
def meminfo():
    d={}
    for l in open('/proc/meminfo'):
        k,v=l.split(':'); d[k]=int(v.split()[0])
    return d['Dirty'], d['Writeback']
def psi(name):
    t={}
    for l in open(f'/proc/pressure/{name}'):
        f=l.split(); t[f[0]]=int(f[4].split('=')[1])
    return t['some']
def stat():
    f=open('/proc/stat').readline().split()[1:]
    return [int(x) for x in f]
kinds=['repair','ingest','process','sink','audit','kafka','clickhouse','bench']
print('t,'+','.join(kinds)+',rd_kb,wr_kb,disk_rd_kb,disk_wr_kb,disk_busy_ms,dirty_kb,writeback_kb,psi_io_ms,psi_cpu_ms,user,nice,sys,idle,iowait,softirq,steal', flush=True)
prev=None; pm={}; nextscan=0
while True:
  t=time.time()
  try:
        if t>=nextscan: pm=procs(); nextscan=t+5
        c={k:0.0 for k in kinds}; rr=rw=0
        for pid,k in pm.items():
            v=cpu(pid)
            if v is not None and k in c: c[k]+=v
            if k=='repair':
                a,b=io(pid); rr+=a; rw+=b
        cur=dict(c=c, rr=rr, rw=rw, d=disk(), psi=(psi('io'),psi('cpu')), st=stat())
        if prev:
            dc=[round(cur['c'][k]-prev['c'][k],2) for k in kinds]
            dd=[(cur['d'][0]-prev['d'][0])//2,(cur['d'][1]-prev['d'][1])//2,cur['d'][2]-prev['d'][2]]
            ds=[a-b for a,b in zip(cur['st'],prev['st'])]
            dirty,wb=meminfo()
            row=[f'{t:.1f}']+dc+[max(0,(cur['rr']-prev['rr'])//1024),max(0,(cur['rw']-prev['rw'])//1024)]+dd+[dirty,wb,(cur['psi'][0]-prev['psi'][0])//1000,(cur['psi'][1]-prev['psi'][1])//1000]+[ds[0],ds[1],ds[2],ds[3],ds[4],ds[6],ds[7]]
            print(','.join(map(str,row)), flush=True)
        prev=cur
  except Exception as e:
    import traceback; traceback.print_exc(file=sys.stderr)
  time.sleep(max(0, 1-(time.time()-t)))
