<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\FileNonceStore;
use Durable\MemoryNonceStore;
use Durable\Signature;
use Durable\SignatureError;
use Durable\SignatureV2;
use PHPUnit\Framework\TestCase;

/**
 * x-durable-signature (v1): lowercase hex HMAC-SHA256 over the exact bytes, compared in constant time;
 * x-durable-signature-v2 beyond its vectors (ConformanceTest); the nonce stores.
 */
final class SigningTest extends TestCase
{
    public function testSignIsLowercaseHexHmacSha256OfTheExactBytes(): void
    {
        $body = '{"name":"user.created","data":{"id":"u1"}}';
        $this->assertSame('7b793b0a387e3e273e513378c1d4d75ff7f17291579bf56e0a7f9424c34ac167', Signature::sign($body, 'signkey-test-1'));
        $this->assertMatchesRegularExpression('/^[0-9a-f]{64}$/', Signature::sign('', 'k'));
        $this->assertNotSame(Signature::sign($body, 'k'), Signature::sign(str_replace(':', ': ', $body), 'k'), 'whitespace matters');
    }

    public function testVerify(): void
    {
        $signature = Signature::sign('body', 'key');
        $this->assertTrue(Signature::verify('body', 'key', $signature));
        $this->assertTrue(Signature::verify('body', 'key', ' ' . strtoupper($signature) . ' '));
        $this->assertFalse(Signature::verify('body', 'key', null));
        $this->assertFalse(Signature::verify('body', 'key', ''));
        $this->assertFalse(Signature::verify('body!', 'key', $signature));
        $this->assertFalse(Signature::verify('body', 'other', $signature));
        $this->assertFalse(Signature::verify('body', 'key', substr($signature, 0, 63)));
        $this->assertFalse(Signature::verify('body', 'key', 'sha256=' . $signature));
    }

    public function testUnicodeKeysAreUsedAsUtf8Bytes(): void
    {
        $this->assertSame(
            'b857f58725e8a61e26cdf2e11d86f27d3cc8800469ffef3d1fb93cffab7b66fc',
            Signature::sign('{"name":"café","data":{"emoji":"😀"}}', 'kéy-ünicode'),
        );
    }

    public function testNoncesAre16RandomBytesIn32LowercaseHexDigits(): void
    {
        $nonces = array_map(fn () => SignatureV2::nonce(), range(1, 50));
        $this->assertCount(50, array_unique($nonces));
        foreach ($nonces as $nonce) {
            $this->assertMatchesRegularExpression('/^[0-9a-f]{32}$/D', $nonce);
        }
    }

    public function testSignRefusesWhatCouldNotBeVerified(): void
    {
        $calls = [
            "sender must be 'engine' or 'app', got 'proxy'" => fn () => SignatureV2::sign('', 'k', 'proxy', 1, SignatureV2::nonce()),
            "n must be 16 to 64 characters of [A-Za-z0-9_-], got 'short'" => fn () => SignatureV2::sign('', 'k', 'app', 1, 'short'),
            "r must be 16 to 64 characters of [A-Za-z0-9_-], got 'a,b'" => fn () => SignatureV2::sign('', 'k', 'app', 1, SignatureV2::nonce(), 'a,b'),
            't must be non-negative epoch milliseconds, got -1' => fn () => SignatureV2::sign('', 'k', 'app', -1, SignatureV2::nonce()),
            'the signing key must be a non-empty string' => fn () => SignatureV2::sign('', '', 'app', 1, SignatureV2::nonce()),
        ];
        foreach ($calls as $message => $call) {
            try {
                $call();
                $this->fail("accepted: $message");
            } catch (\InvalidArgumentException $e) {
                $this->assertSame($message, $e->getMessage());
            }
        }
    }

    public function testParseTakesPartsInAnyOrderAndUppercaseHex(): void
    {
        $header = SignatureV2::sign('b', 'k', 'engine', 1767225600000, 'n0123456789abcdef', 'r0123456789abcdef');
        [$t, $n, $r, $s] = explode(',', $header);
        $expected = SignatureV2::parse($header);
        $this->assertSame($expected, SignatureV2::parse(" $s, $r,$n , $t "));
        $this->assertSame($expected, SignatureV2::parse("$t,$n,$r,s=" . strtoupper(substr($s, 2))));
    }

    /** @return iterable<string, array{string, string}> */
    public static function malformedV2(): iterable
    {
        $s = 's=' . str_repeat('a', 64);
        yield 'a part twice' => ["t=1,t=1,n=0123456789abcdef,$s", 't= appears twice'];
        yield 'an unknown part' => ["t=1,n=0123456789abcdef,x=1,$s", "unexpected part 'x=1' (expected t=, n=, r=, s=)"];
        yield 'no n' => ["t=1,$s", 'no n= part'];
        yield 'no t' => ["n=0123456789abcdef,$s", 'no t= part'];
        yield 'leading zero' => ["t=01,n=0123456789abcdef,$s", "t must be integer epoch milliseconds, got '01'"];
        yield 'negative t' => ["t=-1,n=0123456789abcdef,$s", "t must be integer epoch milliseconds, got '-1'"];
        yield 'fractional t' => ["t=1.5,n=0123456789abcdef,$s", "t must be integer epoch milliseconds, got '1.5'"];
        yield 'nonce too long' => ['t=1,n=' . str_repeat('a', 65) . ",$s", "n must be 16 to 64 characters of [A-Za-z0-9_-], got '" . str_repeat('a', 40) . "…'"];
        yield 'empty r' => ["t=1,n=0123456789abcdef,r=,$s", "r must be 16 to 64 characters of [A-Za-z0-9_-], got ''"];
        yield 'short mac' => ['t=1,n=0123456789abcdef,s=abc', 's must be 64 hex digits'];
        yield 'v1 value' => [str_repeat('a', 64), "unexpected part '" . str_repeat('a', 40) . "…' (expected t=, n=, r=, s=)"];
    }

    /** @dataProvider malformedV2 */
    public function testMalformedV2HeadersNameWhatIsWrong(string $header, string $why): void
    {
        try {
            SignatureV2::parse($header);
            $this->fail('parsed');
        } catch (SignatureError $e) {
            $this->assertSame('malformed', $e->reason);
            $this->assertSame("x-durable-signature-v2: malformed: $why", $e->getMessage());
        }
    }

    public function testTheMemoryStoreRefusesASeenNonceUntilItExpires(): void
    {
        $store = new MemoryNonceStore();
        $this->assertTrue($store->claim('nonce-aaaaaaaaaaaa', 1000, 1000));
        $this->assertFalse($store->claim('nonce-aaaaaaaaaaaa', 1000, 1000 + SignatureV2::NONCE_TTL_MS - 1));
        $this->assertTrue($store->claim('nonce-bbbbbbbbbbbb', 2000, 2000));
        $this->assertTrue($store->claim('nonce-aaaaaaaaaaaa', 1000, 1000 + SignatureV2::NONCE_TTL_MS), 'expired: its message is stale by now');
        $this->assertSame(2, $store->count());
        $store->claim('nonce-cccccccccccc', 9000, 2000 + SignatureV2::NONCE_TTL_MS);
        $this->assertSame(2, $store->count(), 'expired entries are dropped');
    }

    public function testAFullMemoryStoreDropsTheOldestAndRefusesWhatCouldReplayIt(): void
    {
        $store = new MemoryNonceStore(capacity: 2);
        $this->assertTrue($store->claim('nonce-100000000000', 100, 100));
        $this->assertTrue($store->claim('nonce-200000000000', 200, 200));
        $this->assertTrue($store->claim('nonce-300000000000', 300, 300));
        $this->assertSame(2, $store->count(), 'bounded');
        $this->assertFalse($store->claim('nonce-100000000000', 100, 301), 'the dropped nonce still cannot be replayed');
        $this->assertFalse($store->claim('nonce-any-older-000', 99, 301));
        $this->assertTrue($store->claim('nonce-400000000000', 301, 301));
        $this->expectException(\InvalidArgumentException::class);
        new MemoryNonceStore(capacity: 0);
    }

    public function testTheFileStoreRefusesASeenNonceUntilItExpiresAndPrunes(): void
    {
        $dir = Support::tempDir('file-store');
        try {
            $now = (int) floor(microtime(true) * 1000);
            $store = new FileNonceStore($dir);
            $this->assertTrue($store->claim('nonce-aaaaaaaaaaaa', $now, $now));
            $this->assertFalse($store->claim('nonce-aaaaaaaaaaaa', $now, $now + 1000));
            $this->assertFalse((new FileNonceStore($dir))->claim('nonce-aaaaaaaaaaaa', $now, $now + 1000), 'another instance (process) sees it');
            $later = $now + SignatureV2::NONCE_TTL_MS + 1000;
            $this->assertTrue($store->claim('nonce-aaaaaaaaaaaa', $later, $later), 'expired');
            $this->assertTrue($store->claim('nonce-bbbbbbbbbbbb', $now, $now));
            $muchLater = $later + SignatureV2::NONCE_TTL_MS + 61_000;
            $this->assertTrue($store->claim('nonce-cccccccccccc', $muchLater, $muchLater));
            $this->assertSame(['nonce-cccccccccccc'], array_map('basename', glob("$dir/*") ?: []), 'expired files were removed');
        } finally {
            Support::removeDir($dir);
        }
    }

    public function testTheFileStoreRefusesADirectoryOthersCanWrite(): void
    {
        $dir = Support::tempDir('file-store');
        chmod($dir, 0777);
        try {
            $this->expectException(\RuntimeException::class);
            $this->expectExceptionMessageMatches('#^nonce store: .* must be owned by .* with mode 0700 \(others could re-enable replays\)$#');
            (new FileNonceStore($dir))->claim('nonce-aaaaaaaaaaaa', 1, 1);
        } finally {
            Support::removeDir($dir);
        }
    }

    public function testTheFileStoreNeverTakesANonceAsAPath(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        (new FileNonceStore(sys_get_temp_dir()))->claim('../../etc/passwd-x', 1, 1);
    }
}
