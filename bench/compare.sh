#!/usr/bin/env bash
# One forward+backward pass of VGG-19 up to relu5_1 (objective included), tessera
# against PyTorch on this machine, side by side.
#   bench/compare.sh [SIZES...]        (default: 256 512; REPEAT=5 THREADS=2)
# Prints both medians and the ratio PyTorch / tessera for each size.
set -eu
cd "$(dirname "$0")/.."
repeat=${REPEAT:-5}
threads=${THREADS:-2}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256 512)
make -s tessera-bench >/dev/null
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
printf '%-6s %12s %12s %8s %12s\n' size tessera_s pytorch_s ratio tessera_RSS
for s in "${sizes[@]}"; do
	t_out=$(./tessera-bench --size "$s" --repeat "$repeat" --threads "$threads")
	t=$(tail -n 1 <<<"$t_out" | awk '{print $2}')
	rss=$(grep -o 'peak RSS [0-9.]* MiB' <<<"$t_out" | awk '{print $3 " MiB"}')
	if /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
		p=$(/usr/bin/python3 bench/torch_ref.py --size "$s" --repeat "$repeat" --threads "$threads" | tail -n 1 | awk '{print $2}')
		r=$(awk -v a="$p" -v b="$t" 'BEGIN{printf "%.2fx", a / b}')
	else
		p="n/a" r="n/a (apt-get install python3-torch python3-torchvision)"
	fi
	printf '%-6s %12s %12s %8s %12s\n' "$s" "$t" "$p" "$r" "$rss"
done
