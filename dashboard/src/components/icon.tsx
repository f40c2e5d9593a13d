// Icons from lucide (the `lucide` package: each icon is its own ES module of SVG element data, so the
// bundle holds only the icons imported by name). `lucide-preact` wants Preact 10; this small renderer
// draws the same SVG as lucide's own components (24×24 viewBox, 2 px round strokes, currentColor).
import type { IconNode } from "lucide";

export function Icon({ icon, size = 16, label, class: className }: { icon: IconNode; size?: number; label?: string; class?: string }) {
  return (
    <svg
      xmlns="http://www.w3.org/2000/svg"
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      stroke-width={2}
      stroke-linecap="round"
      stroke-linejoin="round"
      class={`icon${className ? ` ${className}` : ""}`}
      data-icon="lucide"
      role={label ? "img" : undefined}
      aria-label={label}
      aria-hidden={label ? undefined : "true"}
    >
      {icon.map(([tag, attrs], i) => {
        const Tag = tag as "path";
        return <Tag key={i} {...(attrs as Record<string, string>)} />;
      })}
    </svg>
  );
}
