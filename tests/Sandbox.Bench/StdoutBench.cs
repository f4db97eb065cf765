using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Bench;

/// <summary>
/// Issue 15's stdout load: a container writes 1 GiB of zeros to stdout as fast as it can (`dd if=/dev/zero bs=64k`),
/// through `ctr run --rm` (guest pipe → agent → vsock → shim → FIFO → ctr → this process). Every byte must arrive and
/// be a zero. The floors are measured inside a VM of this runtime in the same rounds: the same dd to /dev/null (what
/// the guest can produce at all; issue 15's reference) and through a pipe to `cat` (the least any stdout path costs in
/// the guest: the container's pipe and one reader); the ratios say how much of each the stdout path delivers. While the stream runs, a probe
/// times `ctr version` against the same containerd every half second: the host must stay responsive.
/// </summary>
public sealed partial class StdoutBench(int rounds, ContainerdMatrix release)
{
    private const string OurRuntime = "io.containerd.sandbox.v2";
    private const long Bytes = 1L << 30;
    private const int BlockBytes = 64 * 1024;
    private static readonly string Dd = $"dd if=/dev/zero bs={BlockBytes} count={Bytes / BlockBytes}";
    private static readonly TimeSpan StreamTimeout = TimeSpan.FromMinutes(15);

    public async Task RunAsync(BenchReport report, CancellationToken cancellationToken)
    {
        await using var containerd = await BenchContainerd.StartAsync();

        var streamed = new List<double>();
        var inGuest = new List<double>();
        var throughPipe = new List<double>();
        var probes = new List<double>();
        for (int round = 1; round <= rounds; round++)
        {
            inGuest.Add(await GuestMiBPerSecondAsync(containerd, $"dd{round}", $"{Dd} of=/dev/null", cancellationToken));
            throughPipe.Add(await GuestMiBPerSecondAsync(containerd, $"pipe{round}", $"{Dd} 2>/dev/null | cat >/dev/null", cancellationToken));
            var (mibPerSecond, slowestProbe) = await StreamMiBPerSecondAsync(containerd, $"stdout{round}", cancellationToken);
            streamed.Add(mibPerSecond);
            probes.Add(slowestProbe);
            Console.WriteLine(FormattableString.Invariant(
                $"round {round}/{rounds}: 1 GiB to stdout at {mibPerSecond:0.0} MiB/s (in the guest: dd to /dev/null {inGuest[^1]:0.0} MiB/s, through a pipe to cat {throughPipe[^1]:0.0} MiB/s); slowest `ctr version` meanwhile {slowestProbe:0.000} s"));
        }
        string on = $"containerd {release.Label}";
        double stdoutMedian = BenchReport.Median(streamed);
        double guestMedian = BenchReport.Median(inGuest);
        report.Add("stdout_mib_s" + release.Suffix, stdoutMedian, "MiB/s", $"{on}: 1 GiB of a container's stdout through ctr run, every byte checked (median of {rounds})");
        report.Add("stdout_guest_dd_mib_s" + release.Suffix, guestMedian, "MiB/s", $"{on}: the same dd to /dev/null inside the guest (median of {rounds})");
        report.Add("stdout_over_guest_ratio" + release.Suffix, stdoutMedian / guestMedian, "ratio", $"{on}: stdout_mib_s / stdout_guest_dd_mib_s (target >= 0.5)");
        double pipeMedian = BenchReport.Median(throughPipe);
        report.Add("stdout_guest_pipe_mib_s" + release.Suffix, pipeMedian, "MiB/s", $"{on}: the same dd through a pipe to cat inside the guest, the least any stdout path costs there (median of {rounds})");
        report.Add("stdout_over_guest_pipe_ratio" + release.Suffix, stdoutMedian / pipeMedian, "ratio", $"{on}: stdout_mib_s / stdout_guest_pipe_mib_s");
        report.Add("stdout_probe_max_s" + release.Suffix, probes.Max(), "s", $"{on}: the slowest `ctr version` while the streams ran (the host stays responsive)");
    }

    /// <summary>Streams 1 GiB through ctr's stdout, counting and checking every byte; returns MiB/s and the slowest probe.</summary>
    private static async Task<(double MiBPerSecond, double SlowestProbe)> StreamMiBPerSecondAsync(PrivateContainerd containerd, string id,
        CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo("ctr") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "-a", containerd.GrpcAddress, "run", "--rm", "--fifo-dir", containerd.FifoDirectory, "--runtime", OurRuntime,
                     BusyboxOciImage.DefaultName, id, "sh", "-c", Dd + " 2>/dev/null" })
            startInfo.ArgumentList.Add(argument);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StreamTimeout);
        using var probing = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var probe = ProbeAsync(containerd, probing.Token);

        using var ctr = Process.Start(startInfo) ?? throw new InvalidOperationException("cannot start ctr");
        var stderr = ctr.StandardError.ReadToEndAsync(timeout.Token);
        var clock = Stopwatch.StartNew();
        long received = 0, firstNonZero = -1;
        var buffer = new byte[1 << 20];
        try
        {
            var stdout = ctr.StandardOutput.BaseStream;
            int read;
            while ((read = await stdout.ReadAsync(buffer, timeout.Token)) > 0)
            {
                if (firstNonZero < 0 && buffer.AsSpan(0, read).IndexOfAnyExcept((byte)0) is var at and >= 0)
                    firstNonZero = received + at;
                received += read;
            }
            await ctr.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            ctr.Kill(entireProcessTree: true);
            throw new TimeoutException($"{id}: 1 GiB to stdout did not finish within {StreamTimeout.TotalMinutes} min ({received} bytes arrived)");
        }
        double seconds = clock.Elapsed.TotalSeconds;
        await probing.CancelAsync();
        double slowestProbe = await probe;
        string errors = await stderr;
        if (ctr.ExitCode != 0 || received != Bytes || firstNonZero >= 0)
            throw new InvalidOperationException($"{id}: ctr exited {ctr.ExitCode} after {received} of {Bytes} bytes" +
                (firstNonZero >= 0 ? $", byte {firstNonZero} was not a zero" : "") + $"\n--- ctr's stderr ---\n{errors}");
        return (Bytes / (1024.0 * 1024.0) / seconds, slowestProbe);
    }

    /// <summary>Times `ctr version` every half second until cancelled; returns the slowest.</summary>
    private static async Task<double> ProbeAsync(PrivateContainerd containerd, CancellationToken cancellationToken)
    {
        double slowest = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var clock = Stopwatch.StartNew();
            var result = await containerd.CtrAsync(["version"], TimeSpan.FromSeconds(60));
            if (result.ExitCode != 0)
                throw new InvalidOperationException($"containerd did not answer `ctr version` while a container streamed its stdout: {result}");
            slowest = Math.Max(slowest, clock.Elapsed.TotalSeconds);
            try
            {
                await Task.Delay(500, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return slowest;
    }

    /// <summary>A shell command inside a VM of this runtime that moves the same 1 GiB, timed in the guest by busybox
    /// `time`; returns MiB/s.</summary>
    private static async Task<double> GuestMiBPerSecondAsync(PrivateContainerd containerd, string id, string command, CancellationToken cancellationToken)
    {
        // `time` reports on stderr: join it to stdout, which is what ctr hands back
        var result = await containerd.CtrAsync(["run", "--rm", "--fifo-dir", containerd.FifoDirectory, "--runtime", OurRuntime,
            BusyboxOciImage.DefaultName, id, "sh", "-c", $"{{ time sh -c '{command}'; }} 2>&1"], StreamTimeout);
        cancellationToken.ThrowIfCancellationRequested();
        // busybox time: "real\t0m 0.71s" (10 ms resolution)
        var match = RealTime().Match(result.Stdout);
        if (result.ExitCode != 0 || !match.Success)
            throw new InvalidOperationException($"{id}: `{command}` in the guest: {result}");
        double seconds = int.Parse(match.Groups["minutes"].Value, CultureInfo.InvariantCulture) * 60
                         + double.Parse(match.Groups["seconds"].Value, CultureInfo.InvariantCulture);
        return Bytes / (1024.0 * 1024.0) / Math.Max(seconds, 0.01);
    }

    [GeneratedRegex(@"real\s+(?<minutes>\d+)m\s*(?<seconds>[0-9.]+)s")]
    private static partial Regex RealTime();
}
