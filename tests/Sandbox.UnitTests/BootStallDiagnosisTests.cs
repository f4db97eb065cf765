using Sandbox.Runtime.Agent;

namespace Sandbox.UnitTests;

public class BootStallDiagnosisTests
{
    [Fact]
    public void The_cpu_time_of_a_running_process_is_read_and_a_gone_one_has_none()
    {
        Assert.NotNull(BootStallDiagnosis.CpuSecondsOf(Environment.ProcessId));
        Assert.Null(BootStallDiagnosis.CpuSecondsOf(int.MaxValue));
    }

    [Fact]
    public void A_stall_with_an_empty_console_names_the_vmm_state_the_console_size_and_the_host_load()
    {
        string console = Path.GetTempFileName(); // empty
        try
        {
            // this test process stands in for a VMM that got little CPU in a long wait
            string text = BootStallDiagnosis.Describe(Environment.ProcessId, console, TimeSpan.FromHours(10));
            Assert.Contains($"the VMM (pid {Environment.ProcessId}) runs and used", text);
            Assert.Contains("the console log has 0 bytes", text);
            Assert.Contains("host load average", text);
            Assert.Contains("the host is overloaded", text);

            Assert.Contains("is gone", BootStallDiagnosis.Describe(int.MaxValue, console, TimeSpan.FromSeconds(60)));
            Assert.Contains("no console log", BootStallDiagnosis.Describe(null, console + ".missing", TimeSpan.FromSeconds(60)));
        }
        finally
        {
            File.Delete(console);
        }
    }
}
