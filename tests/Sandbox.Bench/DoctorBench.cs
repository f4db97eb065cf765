using System.Diagnostics;
using Sandbox.Shim.Tests;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Bench;

/// <summary>
/// `sandboxctl doctor` as an operator runs it: on a sandbox that failed for real through containerd (`ctr run` of an
/// executable the image lacks, so the sandbox is gone and its post-mortem record is read) and on a running one (its
/// state directory and one agent call). The floor is `sandboxctl list` of an empty state root in the same rounds: the
/// cost of starting the program at all.
/// </summary>
public sealed class DoctorBench(int rounds)
{
    private const string Runtime = "io.containerd.sandbox.v2";
    private const int CallsPerRound = 3;

    public async Task RunAsync(BenchReport report, CancellationToken cancellationToken)
    {
        string directory = Directory.CreateTempSubdirectory("sbdoctor-").FullName;
        string stateRoot = Path.Combine(directory, "sb");
        string emptyRoot = Directory.CreateDirectory(Path.Combine(directory, "empty")).FullName;
        string config = Path.Combine(directory, "configuration.toml");
        await File.WriteAllTextAsync(config, $"[runtime]\nstate_root = \"{stateRoot}\"\n", cancellationToken);
        string sandboxctl = SandboxctlBinary.Locate();
        try
        {
            await using var containerd = await BenchContainerd.StartAsync();
            var failedRun = await containerd.CtrAsync(["run", "--rm", "--fifo-dir", containerd.FifoDirectory, "--runtime", Runtime,
                "--runtime-config-path", config, BusyboxOciImage.DefaultName, "doctor-failed", "/no/such/program"]);
            if (failedRun.ExitCode == 0)
                throw new InvalidOperationException($"the failing run succeeded: {failedRun}");
            var liveRun = await containerd.CtrAsync(["run", "-d", "--fifo-dir", containerd.FifoDirectory, "--runtime", Runtime,
                "--runtime-config-path", config, BusyboxOciImage.DefaultName, "doctor-live", "sleep", "1000"]);
            if (liveRun.ExitCode != 0)
                throw new InvalidOperationException($"starting the running sandbox failed: {liveRun}");

            var failed = new List<double>();
            var live = new List<double>();
            var floor = new List<double>();
            for (int round = 1; round <= rounds; round++)
            {
                for (int call = 0; call < CallsPerRound; call++)
                {
                    floor.Add(await TimeAsync(sandboxctl, 0, "list", "--state-root", emptyRoot));
                    failed.Add(await TimeAsync(sandboxctl, 1, "doctor", "doctor-failed", "--state-root", stateRoot));
                    live.Add(await TimeAsync(sandboxctl, 0, "doctor", "doctor-live", "--state-root", stateRoot));
                }
                Console.WriteLine(FormattableString.Invariant(
                    $"round {round}/{rounds}: sandboxctl doctor: failed sandbox {BenchReport.Median(failed):0} ms, running {BenchReport.Median(live):0} ms; list of nothing {BenchReport.Median(floor):0} ms"));
            }
            await containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", "doctor-live"]);
            await containerd.CtrAsync(["task", "rm", "-f", "doctor-live"]);
            await containerd.CtrAsync(["container", "rm", "doctor-live"]);

            double floorMs = BenchReport.Median(floor);
            report.Add("doctor_ms", BenchReport.Median(failed), "ms",
                $"sandboxctl doctor on a sandbox that failed through containerd (its post-mortem record; median of {failed.Count}) (target < 300)");
            report.Add("doctor_live_ms", BenchReport.Median(live), "ms", $"sandboxctl doctor on a running sandbox (one agent call; median of {live.Count})");
            report.Add("doctor_over_start_floor", BenchReport.Median(failed) / floorMs, "ratio",
                $"doctor_ms / `sandboxctl list` of an empty state root in the same rounds ({floorMs:0} ms: starting the program)");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<double> TimeAsync(string sandboxctl, int expectedExit, params string[] arguments)
    {
        var clock = Stopwatch.StartNew();
        var result = await ExternalCommand.RunAsync(sandboxctl, arguments, TimeSpan.FromSeconds(60), stdin: "");
        double ms = clock.Elapsed.TotalMilliseconds;
        if (result.ExitCode != expectedExit)
            throw new InvalidOperationException($"expected exit {expectedExit}: {result}");
        return ms;
    }
}
