// Rebuilds this folder from the full Fashion-MNIST set of the Debian package dataset-fashion-mnist:
// the first 300 training and first 100 test images of each class, in file order.  Run: node data/fashion-mnist-subset/make-subset.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Buffer } from 'node:buffer';
const dir = '/usr/share/datasets/fashion-mnist';
function read(p){ const b=gunzipSync(readFileSync(p)); const r=b[3]; const dims=[]; for(let i=0;i<r;i++) dims.push(b.readUInt32BE(4+4*i)); return {dims, data:b.subarray(4+4*r)}; }
function enc(dims,data){ const h=Buffer.alloc(4+4*dims.length); h[2]=8; h[3]=dims.length; dims.forEach((d,i)=>h.writeUInt32BE(d,4+4*i)); return gzipSync(Buffer.concat([h,Buffer.from(data)]),{level:9}); }
// First `per` examples of each class in file order: balanced, deterministic, reproducible from the source files.
function take(prefix, per, out){
  const im=read(`${dir}/${prefix}-images-idx3-ubyte.gz`), lb=read(`${dir}/${prefix}-labels-idx1-ubyte.gz`);
  const cnt=new Array(10).fill(0); const idx=[];
  for(let i=0;i<lb.dims[0] && idx.length<10*per;i++){ const c=lb.data[i]; if(cnt[c]<per){cnt[c]++; idx.push(i);} }
  const imgs=new Uint8Array(idx.length*784), labs=new Uint8Array(idx.length);
  idx.forEach((i,k)=>{imgs.set(im.data.subarray(i*784,(i+1)*784),k*784); labs[k]=lb.data[i];});
  writeFileSync(`${out}/${prefix}-images-idx3-ubyte.gz`, enc([idx.length,28,28],imgs));
  writeFileSync(`${out}/${prefix}-labels-idx1-ubyte.gz`, enc([idx.length],labs));
  console.log(prefix, idx.length, 'max source index', idx[idx.length-1]);
}
take('train', 300, 'data/fashion-mnist-subset');
take('t10k', 100, 'data/fashion-mnist-subset');
