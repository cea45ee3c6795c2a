import { useEffect, useState } from "react";
import { Image, Skeleton } from "@mantine/core";
import QRCode from "qrcode";

/** A QR code of `value`, drawn in the browser (no request leaves the page). */
export function QrCode({ value, size = 220, label }: { value: string; size?: number; label: string }) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    QRCode.toString(value, { type: "svg", margin: 2, errorCorrectionLevel: "M" })
      .then((svg) => live && setSrc(`data:image/svg+xml;utf8,${encodeURIComponent(svg)}`))
      .catch(() => live && setSrc(null));
    return () => {
      live = false;
    };
  }, [value]);
  if (!src) return <Skeleton w={size} h={size} />;
  return <Image src={src} w={size} h={size} alt={label} bg="white" radius="sm" data-testid="qr" />;
}
